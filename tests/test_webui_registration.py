"""The webui glue against stand-ins that follow A1111's documented semantics
(tests/support/webui_standins.py): registration, labels, options, settings, the sampler object
(sigmas, callback, extra_args, seeded noise, interrupt, img2img, model calls per step)
and the schedules. The same behaviour is checked on real webuis in test_webui_hosts.py."""

from __future__ import annotations

import logging

import pytest
import torch

from support import webui_standins as S

from seeds_samplers.samplers.cfg_pp import menu_entries  # noqa: E402
from seeds_samplers.samplers.registry import SAMPLERS, SCHEDULES, Param, SamplerSpec  # noqa: E402
from seeds_samplers.webui import setup_webui  # noqa: E402
from seeds_samplers.webui.naming import (  # noqa: E402
    OWNER_OPTION, ends_with_scheduler_word, sampler_label, sampler_settings, schedule_label,
)
from seeds_samplers.webui.registration import register_samplers, register_settings  # noqa: E402

# Every scheduler label, name and alias of A1111 v1.10.1, plus reForge's extra ones
# that could end a label (reForge strips them case-insensitively).
SCHEDULER_WORDS = [
    "Automatic", "automatic", "Uniform", "uniform", "Karras", "karras", "Exponential", "exponential",
    "Polyexponential", "polyexponential", "SGM Uniform", "sgm_uniform", "SGMUniform", "KL Optimal", "kl_optimal",
    "Align Your Steps", "align_your_steps", "Simple", "simple", "Normal", "normal", "DDIM", "ddim", "Beta", "beta",
    "Turbo", "Linear", "Cosine", "Laplace", "AYS", "Sinusoidal", "Invcosinusoidal", "Kohaku", "Polynomial",
]
# Samplers already in Forge main / reForge main that ours must not shadow.
HOST_NAMES = ["DEIS", "IPNDM", "IPNDM_V", "ER SDE", "SEEDS 2 DP", "SEEDS 3 DP", "SA-Solver", "HeunPP2", "DDPM",
              "RES Multistep", "Euler", "DPM++ 2M"]

OURS = [sampler_label(s) for s in menu_entries(cfg_pp=False)]  # the samplers and their menu variants


@pytest.fixture
def host():
    h = S.make_host()
    assert setup_webui(S.host_modules(h)) is not None
    return h


def ours(h):
    return [d for d in h.sd_samplers.all_samplers if d.options.get(OWNER_OPTION)]


# --- registration ------------------------------------------------------------------------
def test_every_registry_entry_is_added_in_place():
    h = S.make_host()
    live, before = h.sd_samplers.all_samplers, list(h.sd_samplers.all_samplers)
    calls = h.sd_samplers.set_samplers_calls
    setup_webui(S.host_modules(h))
    sd = h.sd_samplers
    assert sd.all_samplers is live and sd.samplers is live and sd.samplers_for_img2img is live
    assert live[:len(before)] == before  # the host's own entries untouched, in order
    assert [d.name for d in ours(h)] == OURS
    assert sd.set_samplers_calls > calls
    for spec in SAMPLERS.values():
        label = sampler_label(spec)
        assert sd.all_samplers_map[label] is next(d for d in live if d.name == label)
        assert sd.samplers_map[label.lower()] == label
        assert sd.samplers_map[spec.host_name] == label  # the alias is the ComfyUI name
        assert sd.get_sampler_and_scheduler(label, "Automatic") == (label, "Automatic")


def test_running_twice_adds_nothing_twice(host):
    """Reload UI re-executes the script; a second copy of the extension runs it again."""
    sd, sch = host.sd_samplers, host.sd_schedulers
    names = [d.name for d in sd.all_samplers]
    old = {d.name: d for d in ours(host)}
    sched_names = [s.name for s in sch.schedulers]
    n_opts = len(host.shared.opts.data_labels)
    for _ in range(2):
        setup_webui(S.host_modules(host))
    assert [d.name for d in sd.all_samplers] == names
    assert [s.name for s in sch.schedulers] == sched_names
    assert len(host.shared.opts.data_labels) == n_opts
    # entries are refreshed at their index (a reloaded script's constructors are used)
    assert all(sd.all_samplers_map[n] is not old[n] for n in old)
    assert set(sch.schedulers_map) >= {s.host_name for s in SCHEDULES.values()}


def test_options_are_scalars_and_the_api_lists_every_sampler(host):
    items = S.api_samplers(host.sd_samplers)  # raises on a non-scalar option, as pydantic does
    ours_api = {i["name"]: i for i in items if OWNER_OPTION in i["options"]}
    assert list(ours_api) == OURS
    for spec in SAMPLERS.values():
        assert ours_api[sampler_label(spec)]["options"][OWNER_OPTION] == spec.id
    # the check itself catches a list option
    host.sd_samplers.all_samplers.append(host.sd_samplers.all_samplers[0]._replace(options={"x": [1]}))
    with pytest.raises(TypeError):
        S.api_samplers(host.sd_samplers)


def test_labels_are_readable_unique_and_never_end_in_a_scheduler_word(host):
    assert len({n.lower() for n in OURS}) == len(OURS)
    taken = {n.lower() for n in HOST_NAMES}
    for label, spec in zip(OURS, menu_entries(cfg_pp=False)):
        assert label.lower() not in taken
        assert label.startswith(spec.title)
        assert ends_with_scheduler_word(label, SCHEDULER_WORDS + [schedule_label(s) for s in SCHEDULES.values()]
                                        + [s.host_name for s in SCHEDULES.values()]) is None
    # with every schedule of ours in the list, the host still resolves each label to itself
    for label in OURS:
        for sched in SCHEDULES.values():
            assert host.sd_samplers.get_sampler_and_scheduler(label, schedule_label(sched)) == (
                label, schedule_label(sched))
    # and the rule itself notices a bad label (case-insensitively, as reForge compares)
    assert ends_with_scheduler_word("Foo karras", SCHEDULER_WORDS) == "Karras"


def test_a_name_taken_by_someone_else_is_left_alone(caplog):
    h = S.make_host()
    label = next(n for n in OURS if n.upper() != n)  # e.g. another extension's "IPNDM (SS)"
    theirs = h.sd_samplers_common.SamplerData(label.upper(), lambda m: None, [], {})
    h.sd_samplers.all_samplers.append(theirs)
    h.sd_samplers.all_samplers_map[theirs.name] = theirs
    with caplog.at_level(logging.WARNING, logger="seeds_samplers"):
        setup_webui(S.host_modules(h))
    assert theirs in h.sd_samplers.all_samplers
    assert label not in h.sd_samplers.all_samplers_map
    assert [d.name for d in ours(h)] == [n for n in OURS if n != label]
    assert any("already used" in r.getMessage() for r in caplog.records)


def test_a_failure_is_logged_once_and_leaves_the_host_working(caplog):
    h = S.make_host()
    names = [d.name for d in h.sd_samplers.all_samplers]

    def broken():
        raise RuntimeError("set_samplers exploded")

    h.sd_samplers.set_samplers = broken
    with caplog.at_level(logging.ERROR, logger="seeds_samplers"):
        assert setup_webui(S.host_modules(h)) is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "set_samplers exploded" in errors[0].getMessage()
    assert h.sd_samplers.get_sampler_and_scheduler("Euler", "Automatic") == ("Euler", "Automatic")
    assert names == [d.name for d in h.sd_samplers.all_samplers][:len(names)]


def test_glue_is_generic_over_the_registry():
    """A sampler the glue has never seen, with every parameter kind, gets its entry,
    its settings (ranges, defaults from its menu settings, help text) and its run."""
    calls = {}

    def sample_probe(model, x, sigmas, extra_args=None, callback=None, disable=None, flag=False, count=2,
                     scale=0.5, mode="a", free=1.5, model_type=None):
        calls.update(flag=flag, count=count, scale=scale, mode=mode, free=free, device=sigmas.device)
        for i in range(len(sigmas) - 1):
            x = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **extra_args)
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x})
        return x

    spec = SamplerSpec(
        "probe", sample_probe, "probe", "Probe Solver", "A test sampler.",
        (Param("flag", False, "A switch."), Param("count", 2, "A count.", 1, 5, 1),
         Param("scale", 0.5, "A scale.", 0.0, 1.0, 0.05), Param("mode", "a", "A mode.", choices=("a", "b")),
         Param("free", 1.5, "Unbounded.")),
        calls_per_step=lambda p: p["count"], menu={"mode": "b", "count": 3})
    h = S.make_host()
    register_samplers(h.sd_samplers, h.sd_samplers_common, h.sd_samplers_kdiffusion, h.sd_schedulers, h.shared,
                      specs=[spec])
    settings = sampler_settings(spec)
    for s in settings:
        h.shared.opts.add_option(s.key, h.shared.OptionInfo(s.default, s.label, None, s.component()[1],
                                                            infotext=s.infotext))
    kinds = {s.param.name: s.component() for s in settings}
    assert kinds["flag"] == ("checkbox", {})
    assert kinds["count"] == ("slider", {"minimum": 1, "maximum": 5, "step": 1})
    assert kinds["mode"] == ("dropdown", {"choices": ["a", "b"]})
    assert kinds["free"][0] == "number"
    assert {s.param.name: s.default for s in settings} == spec.menu_settings() == dict(
        flag=False, count=3, scale=0.5, mode="b", free=1.5)
    assert all(s.help == s.param.description for s in settings)
    assert h.sd_samplers.find_sampler_config("Probe Solver (SS)").total_steps(4) == 12
    sampler = h.sd_samplers.create_sampler("Probe Solver (SS)")
    p = S.Processing([1], steps=4)
    sampler.sample(p, torch.randn(1, 3, 8, 8))
    assert calls["mode"] == "b" and calls["count"] == 3 and calls["device"] == torch.device("cpu")
    assert p.extra_generation_params["Probe Solver mode"] == "b"


def test_settings_section_from_the_registry(host):
    labels = host.shared.opts.data_labels
    for spec in SAMPLERS.values():
        for s in sampler_settings(spec):
            info = labels[s.key]
            assert info.section == ("seeds_samplers", "SEEDS Samplers")
            assert info.infotext == s.infotext and info.default == s.default
            assert s.param.description in info.comment_after
            kind, args = s.component()
            assert info.component == kind and info.component_args == args
    assert len(labels) == sum(len(s.params) for s in SAMPLERS.values()) + sum(
        len(s.params) for s in SCHEDULES.values())
    # registering the settings again replaces, never duplicates
    assert register_settings(host.shared, {k: k for k in ("checkbox", "dropdown", "slider", "number")})
    assert len(host.shared.opts.data_labels) == len(labels)


# --- the sampler object --------------------------------------------------------------------
def _run(h, label, seeds, steps=4, x=None, **opts):
    for k, v in opts.items():
        setattr(h.shared.opts, k, v)
    sampler = h.sd_samplers.create_sampler(label)
    x = torch.randn((len(seeds), 3, 8, 8), generator=torch.Generator().manual_seed(0)) if x is None else x
    p = S.Processing(seeds, steps=steps, rng=S.ImageRNG((3, 8, 8), seeds))
    out = sampler.sample(p, x)
    return out, p, sampler


@pytest.mark.parametrize("spec", list(SAMPLERS.values()), ids=list(SAMPLERS))
def test_every_sampler_runs_with_the_host_protocol(host, spec):
    label = sampler_label(spec)
    out, p, sampler = _run(host, label, [11, 12], steps=4)
    assert out.shape == (2, 3, 8, 8) and bool(torch.isfinite(out).all())
    assert sampler.callback_steps == [0, 1, 2, 3]  # once per step, every step
    calls = sampler.model_wrap_cfg.calls
    assert len(calls) == 4 * spec.calls(**spec.menu_settings()) or spec.id.startswith("amed") or len(calls) >= 4
    assert all(c.shape == (2,) for c in calls)  # per-image sigma
    # the values in effect are in the infotext
    for s in sampler_settings(spec):
        assert s.infotext in p.extra_generation_params
    # model calls per step is what the entry reports to the host (prompt editing, refiner)
    cfg = host.sd_samplers.find_sampler_config(label)
    assert cfg.total_steps(4) == 4 * spec.calls(**spec.menu_settings())


def _stochastic():
    return [s for s in SAMPLERS.values() if s.is_stochastic(**s.menu_settings())]


@pytest.mark.parametrize("spec", _stochastic(), ids=[s.id for s in _stochastic()])
def test_noise_is_per_image_and_seeded(host, spec):
    label = sampler_label(spec)
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(3))
    batch, p, _ = _run(host, label, [21, 22], x=x)
    assert p.rng.calls > 0  # the webui's own per-image generators were used
    alone, _, _ = _run(host, label, [22], x=x[1:])
    again, _, _ = _run(host, label, [21, 22], x=x)
    other, _, _ = _run(host, label, [31, 32], x=x)
    torch.testing.assert_close(batch[1:], alone)
    assert torch.equal(batch, again)
    assert (batch - other).abs().max() > 1e-3
    # Brownian noise: keyed by the image seeds as well
    key = next(s.key for s in sampler_settings(spec) if s.param.name == "noise_type")
    b1, p1, _ = _run(host, label, [21, 22], x=x, **{key: "brownian"})
    b2, _, _ = _run(host, label, [22], x=x[1:])
    assert p1.rng.calls == 0 and p1.extra_generation_params[f"{spec.title} noise_type"] == "brownian"
    torch.testing.assert_close(b1[1:], b2)
    assert (b1 - batch).abs().max() > 1e-3


def test_override_settings_change_the_run_and_the_infotext(host):
    spec = SAMPLERS["seeds_1"]
    eta = next(s for s in sampler_settings(spec) if s.param.name == "eta")
    out, p, _ = _run(host, sampler_label(spec), [5], **{eta.key: 0.0})
    assert p.rng.calls == 0  # eta = 0: deterministic, no noise drawn
    assert p.extra_generation_params[eta.infotext] == "0.0"
    setattr(host.shared.opts, eta.key, 3.5e9)
    with pytest.raises(ValueError, match=eta.key):
        _run(host, sampler_label(spec), [5])


def test_interrupt_stops_within_one_step(host):
    spec = SAMPLERS["seeds_3"]  # 3 model calls per step
    sampler = host.sd_samplers.create_sampler(sampler_label(spec))
    state = host.shared.state
    seen = []

    def stop_at_1(d):
        sampler.callback_steps.append(d["i"])
        if d["i"] == 1:
            state.interrupted = True
            seen.append(len(sampler.model_wrap_cfg.calls))

    sampler.callback_state = stop_at_1
    p = S.Processing([1], steps=8, rng=S.ImageRNG((3, 8, 8), [1]))
    out = sampler.sample(p, torch.randn(1, 3, 8, 8))
    assert sampler.callback_steps == [0, 1]
    assert len(sampler.model_wrap_cfg.calls) == seen[0] > 0  # no model call after the step that saw the flag
    assert out is not None
    state.interrupted = False


@pytest.mark.parametrize("spec", list(SAMPLERS.values()), ids=list(SAMPLERS))
def test_img2img_schedule_starting_below_sigma_max(host, spec):
    sampler = host.sd_samplers.create_sampler(sampler_label(spec))
    p = S.Processing([4], steps=8, rng=S.ImageRNG((3, 8, 8), [4]))
    init = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.3
    noise = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    out = sampler.sample_img2img(p, init, noise, steps=8, t_enc=4)
    first = sampler.model_wrap_cfg.calls[0][0].item()
    assert first < host.shared.denoiser.sigmas[-1].item() / 2
    assert bool(torch.isfinite(out).all()) and sampler.callback_steps == [0, 1, 2, 3, 4]  # t_enc + 1 steps


def test_unknown_denoiser_wrapper_is_a_clear_error(host):
    class MysteryDenoiser(torch.nn.Module):
        sigmas = torch.linspace(0.03, 14.6, 1000)

        def get_sigmas(self, n):
            return torch.cat([torch.linspace(14.6, 0.03, n), torch.zeros(1)])

        def forward(self, x, sigma, **kw):
            return x

    sampler = host.sd_samplers.create_sampler(sampler_label(SAMPLERS["deis"]))
    sampler.model_wrap_cfg.inner_model = MysteryDenoiser()
    sampler.model_wrap = sampler.model_wrap_cfg.inner_model
    with pytest.raises(ValueError, match="MysteryDenoiser"):
        sampler.sample(S.Processing([1], steps=3), torch.randn(1, 3, 8, 8))


# --- schedules -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", list(SCHEDULES.values()), ids=list(SCHEDULES))
def test_schedules_in_the_schedule_menu(host, spec):
    entry = host.sd_schedulers.schedulers_map[schedule_label(spec)]
    assert host.sd_schedulers.schedulers_map[spec.host_name] is entry and entry.need_inner_model
    sampler = host.sd_samplers.create_sampler("Euler")
    p = S.Processing([1], steps=6, scheduler=schedule_label(spec))
    sigmas = sampler.get_sigmas(p, 6)
    table = host.shared.denoiser.sigmas
    assert sigmas.shape == (7,) and sigmas.device.type == "cpu" and sigmas[-1] == 0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    torch.testing.assert_close(sigmas[0], table[-1])
    assert p.extra_generation_params["Schedule type"] == schedule_label(spec)


def test_schedule_parameters_come_from_settings_and_go_to_the_infotext(host):
    spec = next(s for s in SCHEDULES.values() if s.params)
    script = setup_webui(S.host_modules(host))()
    from seeds_samplers.webui.naming import schedule_settings

    setting = schedule_settings(spec)[0]
    sampler = host.sd_samplers.create_sampler("Euler")
    p = S.Processing([1], steps=6, scheduler=schedule_label(spec))
    before = sampler.get_sigmas(p, 6)
    value = setting.param.maximum if setting.default != setting.param.maximum else setting.param.minimum
    setattr(host.shared.opts, setting.key, value)
    after = sampler.get_sigmas(p, 6)
    assert (before - after).abs().max() > 1e-4
    script.process(p)
    assert p.extra_generation_params[setting.infotext] == repr(float(value))
