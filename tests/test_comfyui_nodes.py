"""The ComfyUI glue without ComfyUI: node definitions generated from the registries,
and the dropdown registration against stand-in ``comfy`` modules (always runs).

The real host is exercised by tests/test_comfyui_integration.py.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import types

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import comfy_harness as H  # noqa: E402

from seeds_samplers.nodes import definitions as D  # noqa: E402
from seeds_samplers.nodes import node_definitions  # noqa: E402
from seeds_samplers.samplers.registry import SAMPLERS, Param  # noqa: E402
from seeds_samplers.samplers.schedules import SCHEDULES  # noqa: E402

# Names other packs use in the same dropdowns (COMFYUI.md §3.9).
POPULAR_PACK_SAMPLERS = {
    "res_2m", "res_3m", "res_2s", "res_3s", "res_5s", "res_6s", "res_2m_ode", "res_3m_ode", "res_2s_ode",
    "res_3s_ode", "res_5s_ode", "res_6s_ode", "deis_2m", "deis_3m", "deis_2m_ode", "deis_3m_ode", "rk_beta", "rk",
    "legacy_rk", "res_momentumized", "dpmpp_dualsde_momentumized", "clyb_4m_sde_momentumized", "ttm",
    "lcm_custom_noise", "euler_ancestral_dancing", "dpmpp_3m_sde_dynamic_eta", "supreme", "euler_dy",
    "euler_smea_dy", "euler_negative", "euler_dy_negative", "exp_heun_2_x0", "exp_heun_2_x0_sde", "cfgpp_ud10_ab",
}
POPULAR_PACK_SCHEDULERS = {"bong_tangent", "beta57", "ays", "ays+", "ays_30", "ays_30+", "gits", "beta_1_1",
                           "AYS SDXL", "AYS SD1", "AYS SVD", "FlowMatchEulerDiscreteScheduler"}


# --- naming --------------------------------------------------------------------------
def test_names_follow_one_rule_and_collide_with_nothing_known():
    samplers = [s.host_name for s in SAMPLERS.values()]
    schedulers = [D.scheduler_name(s) for s in SCHEDULES]
    for name in samplers + schedulers:
        assert name.startswith("ss_")
    assert not set(samplers) & (set(H.CORE_SAMPLERS) | POPULAR_PACK_SAMPLERS)
    assert not set(schedulers) & (set(H.CORE_SCHEDULERS) | POPULAR_PACK_SCHEDULERS)
    assert len(set(samplers)) == len(samplers) and len(set(schedulers)) == len(schedulers)
    classes, names = node_definitions()
    assert all(n.startswith(("SS_Sampler_", "SS_Sigmas_")) for n in classes)
    assert all(v.endswith("(SS)") for v in names.values())


# --- node definitions ----------------------------------------------------------------
def test_one_sampler_node_per_family_and_one_sigmas_node_per_schedule():
    classes, _ = node_definitions()
    fams = D.families()
    assert {f"SS_Sampler_{f}" for f in fams} | {f"SS_Sigmas_{s}" for s in SCHEDULES} == set(classes)
    for family, specs in fams.items():
        req = classes[f"SS_Sampler_{family}"].INPUT_TYPES()["required"]
        if len(specs) > 1:
            assert req["solver"][0] == [s.id for s in specs]
        for spec in specs:
            for p in spec.params:
                assert p.name in req, (family, p.name)


@pytest.mark.parametrize("node_id", sorted(node_definitions()[0]))
def test_every_input_has_a_tooltip_and_a_default_in_range(node_id):
    cls = node_definitions()[0][node_id]
    assert cls.DESCRIPTION and cls.CATEGORY and cls.FUNCTION and cls.RETURN_TYPES
    for name, (typ, opts) in cls.INPUT_TYPES()["required"].items():
        assert opts.get("tooltip"), (node_id, name)
        if typ in ("INT", "FLOAT"):
            assert opts["min"] <= opts["default"] <= opts["max"], (node_id, name)
            assert opts["step"] > 0
        elif isinstance(typ, list):
            assert opts["default"] in typ


def test_param_ranges_and_tooltips_come_from_the_registry():
    classes, _ = node_definitions()
    for family, specs in D.families().items():
        req = classes[f"SS_Sampler_{family}"].INPUT_TYPES()["required"]
        for spec in specs:
            for p in spec.params:
                typ, opts = req[p.name]
                assert opts["tooltip"].startswith(p.description)
                if p.kind in ("int", "float") and p.minimum is not None:
                    assert opts["min"] <= p.minimum and opts["max"] >= p.maximum
                if p.kind == "choice":
                    assert set(p.choices) <= set(typ)


def test_a_new_registry_entry_appears_without_touching_the_nodes(monkeypatch):
    base = SAMPLERS["seeds_2"]
    extra = dataclasses.replace(base, id="seeds_2_test", family="testfam", title="Test solver",
                                params=base.params + (Param("gamma", 0.25, "A test parameter.", 0.0, 1.0, 0.05),))
    monkeypatch.setitem(SAMPLERS, "seeds_2_test", extra)
    classes, names = node_definitions()
    assert "SS_Sampler_testfam" in classes and names["SS_Sampler_testfam"] == "Test solver Sampler (SS)"
    req = classes["SS_Sampler_testfam"].INPUT_TYPES()["required"]
    assert "solver" not in req and req["gamma"][1]["default"] == 0.25


def test_family_params_used_by_some_members_say_so():
    req = node_definitions()[0]["SS_Sampler_seeds"].INPUT_TYPES()["required"]
    assert "SEEDS-2 only" in req["r"][1]["tooltip"]
    assert "only" not in req["eta"][1]["tooltip"]


# --- stand-in ComfyUI ----------------------------------------------------------------
class FakeKSAMPLER:
    def __init__(self, fn, extra_options={}, inpaint_options={}):
        self.sampler_function, self.extra_options = fn, extra_options


@pytest.fixture
def fake_comfy(monkeypatch):
    """comfy.samplers / comfy.k_diffusion.sampling / nodes with ComfyUI's list layout."""
    ksampler_names = list(H.CORE_SAMPLERS[:-3])
    sampler_names = ksampler_names + ["ddim", "uni_pc", "uni_pc_bh2"]
    handlers = {n: ("builtin", n) for n in H.CORE_SCHEDULERS}
    samplers_mod = types.ModuleType("comfy.samplers")
    samplers_mod.KSAMPLER_NAMES = ksampler_names
    samplers_mod.SAMPLER_NAMES = sampler_names
    samplers_mod.SCHEDULER_HANDLERS = handlers
    samplers_mod.SCHEDULER_NAMES = list(handlers)
    samplers_mod.SchedulerHandler = lambda handler, use_ms=True: types.SimpleNamespace(handler=handler, use_ms=use_ms)
    samplers_mod.KSampler = type("KSampler", (), {"SAMPLERS": sampler_names, "SCHEDULERS": samplers_mod.SCHEDULER_NAMES})
    samplers_mod.KSAMPLER = FakeKSAMPLER
    k_sampling = types.ModuleType("comfy.k_diffusion.sampling")
    k_sampling.sample_euler = lambda *a, **k: None
    kd = types.ModuleType("comfy.k_diffusion")
    kd.sampling = k_sampling
    comfy = types.ModuleType("comfy")
    comfy.samplers, comfy.k_diffusion = samplers_mod, kd
    snapshot_cls = type("Snap", (), {"RETURN_TYPES": (list(sampler_names), list(samplers_mod.SCHEDULER_NAMES), "INT")})
    other_cls = type("Other", (), {"RETURN_TYPES": (["a", "b"],)})
    nodes_mod = types.ModuleType("nodes")
    nodes_mod.NODE_CLASS_MAPPINGS = {"Snap": snapshot_cls, "Other": other_cls, "KSampler": samplers_mod.KSampler}
    for name, mod in (("comfy", comfy), ("comfy.samplers", samplers_mod), ("comfy.k_diffusion", kd),
                      ("comfy.k_diffusion.sampling", k_sampling), ("nodes", nodes_mod)):
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(samplers=samplers_mod, k=k_sampling, nodes=nodes_mod, snap=snapshot_cls,
                                 other=other_cls)


def test_setup_registers_in_place_once(fake_comfy, caplog):
    from seeds_samplers.nodes import setup_comfyui

    s = fake_comfy.samplers
    lists = (s.KSAMPLER_NAMES, s.SAMPLER_NAMES, s.SCHEDULER_NAMES)
    builtin_euler = fake_comfy.k.sample_euler
    with caplog.at_level(logging.INFO, logger="seeds_samplers"):
        classes, names = setup_comfyui()
    ours = [spec.host_name for spec in SAMPLERS.values()]
    scheds = [D.scheduler_name(x) for x in SCHEDULES]
    # the same list objects, our names appended after the built-ins
    assert (s.KSAMPLER_NAMES, s.SAMPLER_NAMES, s.SCHEDULER_NAMES) == lists
    assert all(a is b for a, b in zip((s.KSAMPLER_NAMES, s.SAMPLER_NAMES, s.SCHEDULER_NAMES), lists))
    assert s.KSampler.SAMPLERS is s.SAMPLER_NAMES and s.SAMPLER_NAMES[-len(ours):] == ours
    assert s.KSAMPLER_NAMES[-len(ours):] == ours and s.SCHEDULER_NAMES[-len(scheds):] == scheds
    assert fake_comfy.k.sample_euler is builtin_euler
    for name in ours:
        assert callable(getattr(fake_comfy.k, "sample_" + name))
    for name in scheds:
        assert s.SCHEDULER_HANDLERS[name].use_ms
    # the snapshot copy taken "before we loaded" now matches the live lists; others untouched
    assert fake_comfy.snap.RETURN_TYPES[0] == s.SAMPLER_NAMES and fake_comfy.snap.RETURN_TYPES[0] is not s.SAMPLER_NAMES
    assert fake_comfy.snap.RETURN_TYPES[1] == s.SCHEDULER_NAMES
    assert fake_comfy.other.RETURN_TYPES == (["a", "b"],)
    # a second import registers nothing and replaces nothing
    before = (list(s.SAMPLER_NAMES), list(s.KSAMPLER_NAMES), list(s.SCHEDULER_NAMES), dict(s.SCHEDULER_HANDLERS),
              {n: getattr(fake_comfy.k, "sample_" + n) for n in ours})
    with caplog.at_level(logging.INFO, logger="seeds_samplers"):
        classes2, _ = setup_comfyui()
    after = (list(s.SAMPLER_NAMES), list(s.KSAMPLER_NAMES), list(s.SCHEDULER_NAMES), dict(s.SCHEDULER_HANDLERS),
             {n: getattr(fake_comfy.k, "sample_" + n) for n in ours})
    assert before == after and set(classes2) == set(classes)
    assert "already registered by an earlier import" in caplog.text


def test_a_name_taken_by_another_pack_is_left_alone(fake_comfy, caplog):
    from seeds_samplers.nodes import setup_comfyui

    taken = next(iter(SAMPLERS.values())).host_name
    foreign = lambda *a, **k: "theirs"  # noqa: E731
    setattr(fake_comfy.k, "sample_" + taken, foreign)
    fake_comfy.samplers.SAMPLER_NAMES.append(taken)
    with caplog.at_level(logging.WARNING, logger="seeds_samplers"):
        setup_comfyui()
    assert getattr(fake_comfy.k, "sample_" + taken) is foreign
    assert fake_comfy.samplers.SAMPLER_NAMES.count(taken) == 1
    assert "already taken by another pack" in caplog.text and taken in caplog.text


def test_older_comfyui_without_scheduler_handler(fake_comfy, caplog):
    from seeds_samplers.nodes import setup_comfyui

    del fake_comfy.samplers.SchedulerHandler
    names_before = list(fake_comfy.samplers.SCHEDULER_NAMES)
    with caplog.at_level(logging.INFO, logger="seeds_samplers"):
        classes, _ = setup_comfyui()
    assert fake_comfy.samplers.SCHEDULER_NAMES == names_before
    assert "SIGMAS nodes only" in caplog.text
    assert any(k.startswith("SS_Sigmas_") for k in classes)


# --- what the entries and nodes run ---------------------------------------------------
def _record(monkeypatch, spec_id):
    seen = {}

    def fake_solver(model, x, sigmas, extra_args=None, callback=None, disable=None, **params):
        seen.update(params, extra_args=extra_args, callback=callback, disable=disable)
        return x

    spec = dataclasses.replace(SAMPLERS[spec_id], function=fake_solver)
    monkeypatch.setitem(SAMPLERS, spec_id, spec)
    return spec, seen


def test_dropdown_entry_runs_with_the_dropdown_settings(monkeypatch):
    from seeds_samplers.nodes.registration import dropdown_function

    spec, seen = _record(monkeypatch, "seeds_2")
    spec = dataclasses.replace(spec, dropdown={"eta": 0.5})
    fn = dropdown_function(spec)
    x = torch.zeros(1, 4, 2, 2)
    ea = {"seed": 3, "denoise_mask": None}
    cb = object()
    fn(None, x, torch.tensor([1.0, 0.0]), extra_args=ea, callback=cb, disable=True)
    assert seen["eta"] == 0.5 and seen["r"] == 0.5 and seen["extra_args"] is ea and seen["callback"] is cb
    fn(None, x, torch.tensor([1.0, 0.0]), extra_args=ea, eta=0.0)  # ksampler(name, extra_options) overrides
    assert seen["eta"] == 0.0


def test_sampler_node_returns_ksampler_with_the_node_values(fake_comfy, monkeypatch):
    spec, _ = _record(monkeypatch, "seeds_3")
    cls = node_definitions()[0]["SS_Sampler_seeds"]
    values = {k: v[1]["default"] for k, v in cls.INPUT_TYPES()["required"].items()}
    values.update(solver="seeds_3", eta=0.3, r1=0.25, r2=0.75)
    (ks,) = cls().get_sampler(**values)
    assert isinstance(ks, FakeKSAMPLER) and ks.sampler_function is spec.function
    assert ks.extra_options == spec.resolve(eta=0.3, r1=0.25, r2=0.75, s_noise=values["s_noise"],
                                            noise_type=values["noise_type"], prediction=values["prediction"],
                                            stop_at_sigma_min=values["stop_at_sigma_min"])
    assert "r" not in ks.extra_options  # SEEDS-2's parameter is not passed to SEEDS-3


def test_schedule_node_and_handler_follow_comfy_denoise_rule():
    class MS:  # an SD-like discrete model_sampling
        sigma_min, sigma_max = 0.0292, 14.6146
        sigmas = torch.linspace(0.0292, 14.6146, 1000)

    spec = SCHEDULES["logsnr_uniform"]
    full = D.schedule_sigmas(spec, MS(), 10)
    assert full.dtype == torch.float32 and len(full) == 11 and full[-1] == 0
    assert float(full[0]) == pytest.approx(14.6146, rel=1e-5)
    part = D.schedule_sigmas(spec, MS(), 5, denoise=0.5)
    assert torch.allclose(part, full[-6:])
    assert D.schedule_sigmas(spec, MS(), 5, denoise=0.0).numel() == 0

    class Patcher:
        def get_model_object(self, name):
            assert name == "model_sampling"
            return MS()

    node = node_definitions()[0]["SS_Sigmas_logsnr_uniform"]
    (sig,) = node().get_sigmas(Patcher(), 10, 1.0)
    assert torch.equal(sig, full)


def test_readme_comfyui_section_names_every_entry_and_node():
    import re

    with open(os.path.join(H.REPO, "README.md"), encoding="utf-8") as f:
        m = re.search(r"<!-- comfyui:start -->\n(.*?)<!-- comfyui:end -->", f.read(), re.S)
    assert m, "README has no comfyui section"
    section = m.group(1)
    for spec in SAMPLERS.values():
        assert f"`{spec.host_name}`" in section, spec.host_name
    for sid in SCHEDULES:
        assert f"`{D.scheduler_name(sid)}`" in section, sid
    classes, names = node_definitions()
    for node_id in classes:
        if node_id.startswith("SS_Sampler_"):
            assert f"`{node_id}`" in section, node_id
    for image in re.findall(r"\]\((docs/images/[^)]+)\)", section):
        path = os.path.join(H.REPO, image)
        assert os.path.isfile(path) and os.path.getsize(path) < 300_000, image
