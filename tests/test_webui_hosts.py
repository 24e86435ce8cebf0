"""The extension in real webuis: AUTOMATIC1111 v1.10.1, Forge, reForge, Forge Classic and
Forge Neo on the CPU.

Opt-in: set A1111_ROOT / FORGE_ROOT / REFORGE_ROOT / FORGE_CLASSIC_ROOT / FORGE_NEO_ROOT to
prepared checkouts (pinned ``repositories/``, a venv in ``<ROOT>/venv`` or ``*_PYTHON``; see
docs/a1111.md, Testing), e.g.

    A1111_ROOT=/work/hosts/a1111 python -m pytest -q tests/test_webui_hosts.py

For each host, one webui is started (UI + API, 127.0.0.1) with this repository linked
into ``extensions/`` under an unusual folder name, and a random-weight SD1.5 checkpoint
built by tests/support/webui_assets.py: the API and the UI's menus list our samplers and
schedules; every sampler runs txt2img at 64x64 and is proven to have run (infotext names it
and its parameters, the image differs from Euler's at the same seed); settings overrides
change the image and the infotext, and the infotext (read back through /sdapi/v1/png-info)
reproduces it; an image does not depend on its batch; every schedule (from the "Schedule
type" menu, or on Forge Classic the "Scheduler type" setting) runs with its parameters in the
infotext; one img2img run; Reload UI twice adds nothing twice. Each host needs 5-8 GB of
memory; run one host at a time. Neo's flow predictors are checked without a webui or weights
(test_flow_predictors_of_forge_neo).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import webui_harness as H

from seeds_samplers.samplers.cfg_pp import menu_entries  # noqa: E402
from seeds_samplers.samplers.registry import SAMPLERS, SCHEDULES  # noqa: E402
from seeds_samplers.webui.naming import (  # noqa: E402
    OWNER_OPTION, sampler_label, sampler_settings, schedule_label, schedule_settings, values_from_infotext,
)

# every menu entry but the CFG++ forms (tests/test_webui_cfg_pp.py): the samplers and their menu variants
ENTRIES = {spec.id: spec for spec in menu_entries(cfg_pp=False)}
LABELS = {sid: sampler_label(spec) for sid, spec in ENTRIES.items()}
# sampling steps per test image; at least 3: with 2, SD1's default schedule is [sigma_max, sigma_min, 0]
# and every sampler returns nearly the same image
STEPS = max(3, int(os.environ.get("SS_WEBUI_STEPS", "3")))


@pytest.fixture(scope="module", params=list(H.HOSTS))
def webui(request):
    reason = H.skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    w = H.Webui(request.param)
    try:
        w.start()
    except BaseException:
        w.stop()
        raise
    yield w
    w.stop()


@pytest.fixture(scope="module")
def euler(webui):
    return webui.txt2img("Euler", seed=7, steps=STEPS)


def _ours(items, key="name"):
    return [i for i in items if i[key] in LABELS.values()]


def test_startup_loaded_the_extension_without_errors(webui):
    log = webui.log
    assert "SEEDS Samplers: added samplers" in log
    assert "SEEDS Samplers: failed" not in log and "integration failed" not in log
    assert webui.install_output[0] == 0 and "SEEDS Samplers" not in webui.install_output[1]


def test_api_lists_our_samplers_and_schedules(webui):
    items = webui.get("/sdapi/v1/samplers")
    names = [i["name"] for i in items]
    for spec in ENTRIES.values():
        assert names.count(sampler_label(spec)) == 1
        item = next(i for i in items if i["name"] == sampler_label(spec))
        assert item["aliases"] == [spec.host_name]
        assert str(item["options"][OWNER_OPTION]) == spec.id
    # the host's own entries are still there (reForge's look-alikes included)
    assert "Euler" in names and len(names) > len(LABELS)
    scheds = webui.schedules()  # the API's menu, or Forge Classic's "Scheduler type" choices
    for spec in SCHEDULES.values():
        entry = [s for s in scheds if s["label"] == schedule_label(spec)]
        assert len(entry) == 1
        assert entry[0]["name"] == (spec.host_name if webui.has_schedule_menu else schedule_label(spec))


def test_ui_menus_list_ours(webui):
    """The txt2img / img2img / hires menus the UI was built with (Gradio 3 or 4)."""
    for elem_id in ("txt2img_sampling", "img2img_sampling", "hr_sampler"):
        choices = webui.ui_choices(elem_id)
        assert all(choices.count(label) == 1 for label in LABELS.values()), (elem_id, choices)
    if webui.has_schedule_menu:  # Forge Classic: the setting, checked through webui.schedules()
        for elem_id in ("txt2img_scheduler", "img2img_scheduler", "hr_scheduler"):
            choices = webui.ui_choices(elem_id)
            assert all(choices.count(schedule_label(s)) == 1 for s in SCHEDULES.values()), (elem_id, choices)


@pytest.mark.parametrize("sampler_id", list(ENTRIES))
def test_txt2img_runs_our_sampler(webui, euler, sampler_id):
    spec = ENTRIES[sampler_id]
    label = LABELS[sampler_id]
    r = webui.txt2img(label, seed=7, steps=STEPS)
    info = r["info"]
    assert info["sampler_name"] == label  # not silently replaced by the default
    fields = H.infotext_fields(info["infotexts"][0])
    assert fields["Sampler"] == label
    values = spec.menu_settings()
    for s in sampler_settings(spec):  # every parameter in effect, with the menu entry's values
        assert s.infotext in fields, s.infotext
    assert values_from_infotext(sampler_settings(spec), fields) == {s.key: values[s.param.name]
                                                                     for s in sampler_settings(spec)}
    size, px = H.pixels(r["images"][0])
    assert size == (64, 64)
    assert len(set(px)) > 10  # a real image, not a constant (NaN) one
    _, ref = H.pixels(euler["images"][0])
    # the random checkpoint's denoiser hardly depends on x, so every sampler's image is close
    # to Euler's; the same sampler with the same seed would give exactly Euler's
    assert H.mean_abs_diff(px, ref) > 0.05, "same image as Euler: was our sampler used?"


def _stochastic_spec():
    return next(s for s in SAMPLERS.values() if s.is_stochastic(**s.menu_settings()) and
                any(p.name == "eta" for p in s.params))


def test_settings_override_and_infotext_reproduce_the_image(webui):
    spec = _stochastic_spec()
    label = LABELS[spec.id]
    eta = next(s for s in sampler_settings(spec) if s.param.name == "eta")
    base = webui.txt2img(label, seed=11, steps=STEPS)
    changed = webui.txt2img(label, seed=11, steps=STEPS, override_settings={eta.key: 0.25})
    fields = H.infotext_fields(changed["info"]["infotexts"][0])
    assert fields[eta.infotext] == "0.25"
    _, a = H.pixels(base["images"][0])
    _, b = H.pixels(changed["images"][0])
    assert H.mean_abs_diff(a, b) > 0.5
    # PNG Info parses the image's infotext; its fields turn back into the same settings
    parsed = webui.post("/sdapi/v1/png-info", {"image": "data:image/png;base64," + changed["images"][0]})
    params = parsed.get("parameters") or H.infotext_fields(parsed["info"])
    overrides = values_from_infotext(sampler_settings(spec), {k: str(v) for k, v in params.items()})
    assert overrides[eta.key] == 0.25
    again = webui.txt2img(label, seed=11, steps=STEPS, override_settings=dict(overrides))
    _, c = H.pixels(again["images"][0])
    assert c == b  # the same image from the infotext's settings


def test_an_image_does_not_depend_on_its_batch(webui):
    label = LABELS[_stochastic_spec().id]
    batch = webui.txt2img(label, seed=20, steps=STEPS, batch_size=2)
    alone = webui.txt2img(label, seed=21, steps=STEPS)
    assert batch["info"]["all_seeds"] == [20, 21]
    _, b1 = H.pixels(batch["images"][1])
    _, a = H.pixels(alone["images"][0])
    assert H.mean_abs_diff(b1, a) < 1.0  # same image (batched matmuls may round differently)
    _, b0 = H.pixels(batch["images"][0])
    assert H.mean_abs_diff(b0, b1) > 0.5


@pytest.mark.parametrize("schedule_id", list(SCHEDULES))
def test_our_schedule_in_the_schedule_menu(webui, euler, schedule_id):
    spec = SCHEDULES[schedule_id]
    r = webui.txt2img("Euler", seed=7, steps=STEPS, **webui.schedule_request(schedule_label(spec)))
    fields = H.infotext_fields(r["info"]["infotexts"][0])
    assert fields.get("Schedule type") == schedule_label(spec)
    settings = schedule_settings(spec)  # its parameters in the infotext, read back as the defaults
    assert values_from_infotext(settings, fields) == {s.key: s.default for s in settings}
    _, px = H.pixels(r["images"][0])
    _, ref = H.pixels(euler["images"][0])
    # as for the samplers: the random model's images are close, the host's own schedule gives Euler's exactly
    assert H.mean_abs_diff(px, ref) > 0.05, "same image as with the host's default schedule: was ours used?"


def test_img2img_with_our_sampler(webui, euler):
    label = LABELS[next(iter(SAMPLERS))]
    r = webui.img2img(label, euler["images"][0], seed=3, steps=4)
    assert r["info"]["sampler_name"] == label
    size, px = H.pixels(r["images"][0])
    assert size == (64, 64) and len(set(px)) > 10
    _, init = H.pixels(euler["images"][0])
    assert H.mean_abs_diff(px, init) > 0.5


def test_reload_ui_twice_adds_nothing_twice(webui):
    before = webui.get("/sdapi/v1/samplers")
    before_s = webui.schedules()
    for _ in range(2):
        webui.reload_ui()
    after = webui.get("/sdapi/v1/samplers")
    assert [i["name"] for i in after] == [i["name"] for i in before]
    assert [s["name"] for s in webui.schedules()] == [s["name"] for s in before_s]
    # the refreshed entries still run
    label = LABELS[next(iter(SAMPLERS))]
    r = webui.txt2img(label, seed=5, steps=2)
    assert r["info"]["sampler_name"] == label


def test_flow_predictors_of_forge_neo(tmp_path):
    """Neo's flow models (Flux, and the discrete-flow models with a shift) cannot be loaded
    here (their text encoders are too large for a random checkpoint), so their real
    predictor classes and ``ForgeScheduleLinker`` are run with Neo's Python, without weights:
    the extension must read them as flow models with the predictor's own range and sigmas,
    its schedules must span that range, and every sampler must give exactly what it gives
    with the package's own flow model type (tests/support/webui_flow_check.py)."""
    reason = H.skip_reason("forge-neo")
    if reason:
        pytest.skip(reason)
    root = os.environ[H.HOSTS["forge-neo"]]
    os.symlink(H.REPO, tmp_path / "seeds_samplers")
    r = subprocess.run([H.host_python("forge-neo", root), os.path.join(H.HERE, "webui_flow_check.py"), root,
                        str(tmp_path)], capture_output=True, text=True, timeout=1800, cwd=str(tmp_path),
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr[-4000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(found) == {"PredictionFlux", "PredictionDiscreteFlow"}
    for name, row in found.items():
        assert row["kind"] == "flow", name
        assert (row["sigma_min"], row["sigma_max"]) == (row["pred_sigma_min"], row["pred_sigma_max"]), name
        assert row["table_diff"] == 0.0, name
        assert set(row["schedules"]) == set(SCHEDULES)
        for sid, sig in row["schedules"].items():
            assert sig[0] == pytest.approx(row["sigma_max"]) and sig[-1] == 0.0, (name, sid)
            assert sig[-2] == pytest.approx(row["sigma_min"], rel=1e-5), (name, sid)
            assert all(a > b for a, b in zip(sig, sig[1:])), (name, sid)
    runs = found["PredictionDiscreteFlow"]["samplers"]
    assert set(runs) == set(SAMPLERS)
    for sid, run in runs.items():
        assert run["finite"] and run["diff"] == 0.0, (sid, run)

