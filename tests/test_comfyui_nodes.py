"""The ComfyUI glue without ComfyUI: node definitions generated from the registries,
and the menu entries' registration in ComfyUI's dropdowns against stand-in ``comfy``
modules (always runs).

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

from seeds_samplers.nodes import definitions as D
from seeds_samplers.nodes import node_definitions
from seeds_samplers.samplers.registry import SAMPLERS, Param
from seeds_samplers.samplers.schedules import SCHEDULES
from support import REPO
from support.comfy_nodes import CORE_SAMPLERS, CORE_SCHEDULERS

# Names other packs use in the same dropdowns.
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
    from seeds_samplers.samplers.cfg_pp import menu_entries

    samplers = [s.host_name for s in menu_entries()]  # samplers, their menu variants, CFG++ forms
    schedulers = [s.host_name for s in SCHEDULES.values()]
    for name in samplers + schedulers:
        assert name.startswith("ss_")
    assert not set(samplers) & (set(CORE_SAMPLERS) | POPULAR_PACK_SAMPLERS)
    assert not set(schedulers) & (set(CORE_SCHEDULERS) | POPULAR_PACK_SCHEDULERS)
    assert len(set(samplers)) == len(samplers) and len(set(schedulers)) == len(schedulers)
    classes, names = node_definitions()
    assert all(n.startswith("SS_") for n in classes)
    assert all(v.endswith("(SS)") for v in names.values())


# --- node definitions ----------------------------------------------------------------
def test_one_sampler_node_per_sampler_with_only_its_own_parameters():
    import seeds_samplers.nodes as N

    classes, names = node_definitions()
    legacy = {f"SS_Sampler_{f}" for f, specs in D.families().items() if f in D.LEGACY_FAMILY_NODES and len(specs) > 1}
    assert legacy == {"SS_Sampler_seeds"}
    expected = {f"SS_Sampler_{s}" for s in SAMPLERS} | {f"SS_Sigmas_{s}" for s in SCHEDULES} | legacy
    hand_written = set(N._extra_nodes(N.EXTRA_NODE_MODULES)[0])
    assert set(classes) == expected | hand_written
    assert set(D.build_node_classes()[0]) == expected
    for spec in SAMPLERS.values():
        cls = classes[f"SS_Sampler_{spec.id}"]
        req = cls.INPUT_TYPES()["required"]
        assert set(req) == {p.name for p in spec.params}, spec.id
        assert names[cls.__name__] == D.sampler_title(spec) == f"{spec.title} Sampler (SS)"
        assert not getattr(cls, "DEPRECATED", False)
    for sid, spec in SCHEDULES.items():
        assert names[f"SS_Sigmas_{sid}"] == D.schedule_title(spec)


def _run_node(cls, monkeypatch, fake, **changes):
    values = {k: v[1]["default"] for k, v in cls.INPUT_TYPES()["required"].items()}
    values.update(changes)
    (ks,) = cls().get_sampler(**values)
    return ks


@pytest.mark.parametrize("sampler_id", list(SAMPLERS))
def test_a_new_node_runs_exactly_its_menu_entry(fake_comfy, monkeypatch, sampler_id):
    """Defaults come from SamplerSpec.menu: a fresh node and the ss_<id> entry pass the
    solver identical parameters (SEEDS-2's variant, DEIS's variant/order, r1 = 1/3 ...)."""
    spec = SAMPLERS[sampler_id]
    cls = node_definitions()[0][f"SS_Sampler_{sampler_id}"]
    ks = _run_node(cls, monkeypatch, fake_comfy)
    assert ks.sampler_function.__wrapped__ is spec.function
    assert ks.extra_options == spec.menu_settings()
    for k, v in spec.menu.items():
        shown = cls.INPUT_TYPES()["required"][k][1]["default"]
        assert shown == v or shown == pytest.approx(v, abs=0.006), (k, shown, v)


def test_seeds_2_node_and_menu_entry_agree_on_the_variant():
    req = node_definitions()[0]["SS_Sampler_seeds_2"].INPUT_TYPES()["required"]
    assert req["variant"][1]["default"] == SAMPLERS["seeds_2"].menu_settings()["variant"]


@pytest.mark.parametrize("node_id", sorted(D.build_node_classes()[0]))
def test_numbers_are_shown_at_their_steps_precision(node_id):
    """ComfyUI's frontend prints a FLOAT with max(0, -floor(log10(step))) decimals, rounds
    edits to that, and shows the raw default in the search preview: every default, bound
    and step must print exactly at that precision (r1 shows 0.33, not 0.3333333333333333)."""
    import math

    cls = D.build_node_classes()[0][node_id]
    for name, (typ, opts) in cls.INPUT_TYPES()["required"].items():
        if typ != "FLOAT":
            continue
        step = opts["step"]
        digits = max(0, -math.floor(math.log10(step)))
        for key in ("default", "min", "max", "step"):
            if key in opts:
                assert round(opts[key], digits) == opts[key], (node_id, name, key, opts[key], digits)


def test_shown_default_runs_the_exact_value_other_values_run_as_entered(fake_comfy, monkeypatch):
    cls = node_definitions()[0]["SS_Sampler_seeds_3"]
    req = cls.INPUT_TYPES()["required"]
    assert (req["r1"][1]["default"], req["r2"][1]["default"]) == (0.33, 0.67)
    assert "1/3" in req["r1"][1]["tooltip"]
    ks = _run_node(cls, monkeypatch, fake_comfy)
    assert ks.extra_options["r1"] == 1.0 / 3.0 and ks.extra_options["r2"] == 2.0 / 3.0
    ks = _run_node(cls, monkeypatch, fake_comfy, r1=0.34, r2=0.3333333333333333 * 2)
    assert ks.extra_options["r1"] == 0.34 and ks.extra_options["r2"] == 2.0 / 3.0
    ks = _run_node(cls, monkeypatch, fake_comfy, r1=0.25, r2=0.5)
    assert (ks.extra_options["r1"], ks.extra_options["r2"]) == (0.25, 0.5)


def test_widget_step_prints_exactly():
    from seeds_samplers.nodes.widgets import widget_step

    assert widget_step(0.01) == 0.01 and widget_step(0.5) == 0.5 and widget_step(0.05) == 0.05
    assert widget_step(0.25) == 0.01 and widget_step(None) == 0.01 and widget_step(2.0) == 2.0
    with pytest.raises(ValueError, match="positive"):
        widget_step(-0.1)


@pytest.mark.parametrize("node_id", sorted(D.build_node_classes()[0]))
def test_every_input_has_a_tooltip_and_a_default_in_range(node_id):
    """Generated nodes (hand-written modules follow ComfyUI's own rules)."""
    cls = D.build_node_classes()[0][node_id]
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
    for spec in SAMPLERS.values():
        req = classes[f"SS_Sampler_{spec.id}"].INPUT_TYPES()["required"]
        for p in spec.params:
            typ, opts = req[p.name]
            assert opts["tooltip"].startswith(p.description)
            if p.kind in ("int", "float") and p.minimum is not None:
                assert opts["min"] == p.minimum and opts["max"] == p.maximum
            if p.kind == "choice":
                assert list(p.choices) == typ


def test_a_new_registry_entry_appears_without_touching_the_nodes(monkeypatch):
    base = SAMPLERS["seeds_2"]
    extra = dataclasses.replace(base, id="seeds_2_test", family="testfam", title="Test solver",
                                params=base.params + (Param("gamma", 0.25, "A test parameter.", 0.0, 1.0, 0.05),),
                                menu={"gamma": 0.5})
    monkeypatch.setitem(SAMPLERS, "seeds_2_test", extra)
    classes, names = node_definitions()
    assert "SS_Sampler_seeds_2_test" in classes and names["SS_Sampler_seeds_2_test"] == "Test solver Sampler (SS)"
    req = classes["SS_Sampler_seeds_2_test"].INPUT_TYPES()["required"]
    assert "solver" not in req and req["gamma"][1]["default"] == 0.5 and req["gamma"][1]["step"] == 0.05


def test_parameters_added_to_a_released_node_come_after_its_0_1_0_inputs(monkeypatch):
    """Saved workflows hold widget values by position: a parameter the registry gains (say a
    noise window for the stochastic solvers, inserted anywhere) must not shift them."""
    window = (Param("test_band_top", 1.0, "Test: top of the noise band.", 0.0, 1.0, 0.01),
              Param("test_band_bottom", 0.0, "Test: bottom of the noise band.", 0.0, 1.0, 0.01))
    for sid in ("seeds_2", "er_sde"):
        spec = SAMPLERS[sid]
        monkeypatch.setitem(SAMPLERS, sid, dataclasses.replace(spec, params=spec.params[:1] + window + spec.params[1:]))
    classes, _ = node_definitions()
    for node_id in ("SS_Sampler_seeds", "SS_Sampler_er_sde"):
        released = list(D.RELEASED_WIDGETS[node_id])
        order = list(classes[node_id].INPUT_TYPES()["required"])
        assert order[: len(released)] == released
        assert {"test_band_top", "test_band_bottom"} <= set(order[len(released):])


def test_released_orders_match_the_0_1_0_nodes():
    """The compatibility table names only inputs the nodes still have (none was dropped)."""
    classes, _ = node_definitions()
    for node_id, released in D.RELEASED_WIDGETS.items():
        order = list(classes[node_id].INPUT_TYPES()["required"])
        assert order[: len(released)] == list(released), node_id


# --- the 0.1.0 combined SEEDS node -------------------------------------------------------
def test_legacy_seeds_node_is_hidden_but_loads_and_runs_old_values(fake_comfy, monkeypatch):
    cls = node_definitions()[0]["SS_Sampler_seeds"]
    assert cls.DEPRECATED is True and "Deprecated" in cls.DESCRIPTION
    req = cls.INPUT_TYPES()["required"]
    assert "SEEDS-2 only" in req["r"][1]["tooltip"] and "only" not in req["eta"][1]["tooltip"]
    # widgets_values of a 0.1.0 workflow (workflow 3 as shipped): solver first, r1 unrounded
    old = ["seeds_2", 0.5, 1.0, "gaussian", "data", False, 0.5, "phi_1", 0.3333333333333333, 0.6666666666666666]
    values = dict(zip(D.RELEASED_WIDGETS["SS_Sampler_seeds"], old))
    spec = SAMPLERS["seeds_2"]
    (ks,) = cls().get_sampler(**values)
    assert ks.sampler_function.__wrapped__ is spec.function
    assert ks.extra_options == spec.resolve(eta=0.5, r=0.5, variant="phi_1")
    values.update(solver="seeds_3", r1=0.33)
    (ks,) = cls().get_sampler(**values)
    assert ks.sampler_function.__wrapped__ is SAMPLERS["seeds_3"].function
    assert ks.extra_options["r1"] == 1.0 / 3.0 and "r" not in ks.extra_options
    values["solver"] = "seeds_9"
    with pytest.raises(ValueError, match="solver must be one of"):
        cls().get_sampler(**values)


# --- hand-written node modules -------------------------------------------------------------
def test_extra_node_modules_are_merged_and_a_broken_one_is_skipped(monkeypatch, caplog):
    import seeds_samplers.nodes as N

    good = types.ModuleType("seeds_samplers.nodes.ss_test_extra")

    class Extra:
        RETURN_TYPES = ("SAMPLER",)

    good.NODE_CLASS_MAPPINGS = {"SS_Sampler_extra_test": Extra, "SS_Sampler_ipndm": Extra}
    good.NODE_DISPLAY_NAME_MAPPINGS = {"SS_Sampler_extra_test": "Extra test Sampler (SS)"}
    calls = []
    good.comfyui_setup = lambda: calls.append(1)
    broken = types.ModuleType("seeds_samplers.nodes.ss_test_broken")  # no NODE_CLASS_MAPPINGS
    monkeypatch.setitem(sys.modules, good.__name__, good)
    monkeypatch.setitem(sys.modules, broken.__name__, broken)
    monkeypatch.setattr(N, "EXTRA_NODE_MODULES", ("ss_test_broken", "ss_test_extra"))
    with caplog.at_level(logging.ERROR, logger="seeds_samplers"):
        classes, names = N.node_definitions()
    assert classes["SS_Sampler_extra_test"] is Extra and names["SS_Sampler_extra_test"] == "Extra test Sampler (SS)"
    assert classes["SS_Sampler_ipndm"] is not Extra and names["SS_Sampler_ipndm"] == "iPNDM Sampler (SS)"
    assert "may not replace the generated 'SS_Sampler_ipndm'" in caplog.text  # extend it instead
    assert "SS_Sampler_seeds_2" in classes
    assert "ss_test_broken" in caplog.text and "failed to load" in caplog.text
    assert calls == []  # the setup hook runs only when ComfyUI loads the pack
    N.node_definitions(_setup=True)
    assert calls == [1]


def test_amed_nodes_extend_the_generated_node_with_a_predictor_input(fake_comfy, monkeypatch):
    """nodes/amed.py extends the generated AMED sampler nodes (same id, title and widgets,
    so saved workflows load) with an optional predictor that, when connected, decides."""
    from seeds_samplers.nodes import amed as A

    classes, names = node_definitions()
    assert "optional" not in classes["SS_Sampler_seeds_2"].INPUT_TYPES()  # only the AMED nodes are extended
    for sid in ("amed_solver", "amed_plugin"):
        spec, cls = SAMPLERS[sid], classes[f"SS_Sampler_{sid}"]
        inputs = cls.INPUT_TYPES()
        assert set(inputs["required"]) == {p.name for p in spec.params}
        assert list(inputs["optional"]) == ["predictor"] and inputs["optional"]["predictor"][0] == A.AMED_TYPE
        assert cls.DESCRIPTION.endswith("The SIGMAS must be the ones it was trained on.")
        assert names[cls.__name__] == f"{spec.title} Sampler (SS)"
        values = {k: v[1]["default"] for k, v in inputs["required"].items()}
        for given in ({}, {"predictor": None}):  # no predictor: the solver with the widget values
            (ks,) = cls().get_sampler(**values, **given)
            assert ks.sampler_function.__wrapped__ is spec.function and ks.extra_options == spec.menu_settings()
        made = []
        monkeypatch.setattr(A, "amed_sampler_function", lambda p, stop: made.append((p, stop)) or "learned")
        predictor = object()
        (ks,) = cls().get_sampler(predictor=predictor, **dict(values, stop_at_sigma_min=True))
        assert ks.sampler_function == "learned" and ks.extra_options == {} and made == [(predictor, True)]


# --- stand-in ComfyUI ----------------------------------------------------------------
class FakeKSAMPLER:
    def __init__(self, fn, extra_options={}, inpaint_options={}):
        self.sampler_function, self.extra_options = fn, extra_options


@pytest.fixture
def fake_comfy(monkeypatch):
    """comfy.samplers / comfy.k_diffusion.sampling / nodes with ComfyUI's list layout."""
    ksampler_names = list(CORE_SAMPLERS[:-3])
    sampler_names = ksampler_names + ["ddim", "uni_pc", "uni_pc_bh2"]
    handlers = {n: ("builtin", n) for n in CORE_SCHEDULERS}
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
    from seeds_samplers.samplers.cfg_pp import menu_entries

    ours = [spec.host_name for spec in menu_entries()]  # the registry's samplers, then their CFG++ forms
    scheds = [x.host_name for x in SCHEDULES.values()]
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


def test_menu_entry_runs_with_its_settings(monkeypatch):
    from seeds_samplers.nodes.registration import menu_function

    spec, seen = _record(monkeypatch, "seeds_2")
    spec = dataclasses.replace(spec, menu={"eta": 0.5})
    fn = menu_function(spec)
    x = torch.zeros(1, 4, 2, 2)
    ea = {"seed": 3, "denoise_mask": None}
    cb = object()
    fn(None, x, torch.tensor([1.0, 0.0]), extra_args=ea, callback=cb, disable=True)
    assert seen["eta"] == 0.5 and seen["r"] == 0.5 and seen["extra_args"] is ea and seen["callback"] is cb
    fn(None, x, torch.tensor([1.0, 0.0]), extra_args=ea, eta=0.0)  # ksampler(name, extra_options) overrides
    assert seen["eta"] == 0.0


def test_sampler_node_returns_ksampler_with_the_node_values(fake_comfy, monkeypatch):
    spec, seen = _record(monkeypatch, "seeds_3")
    cls = node_definitions()[0]["SS_Sampler_seeds_3"]
    values = {k: v[1]["default"] for k, v in cls.INPUT_TYPES()["required"].items()}
    values.update(eta=0.3, r1=0.25, r2=0.75)
    (ks,) = cls().get_sampler(**values)
    assert isinstance(ks, FakeKSAMPLER) and ks.sampler_function.__wrapped__ is spec.function

    class CONST:  # ComfyUI's flow parameterisation, reached through guider -> patcher
        sigma_min, sigma_max = 0.001, 1.0

    patcher = types.SimpleNamespace(get_model_object=lambda name: CONST())
    model_k = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_patcher=patcher))
    ks.sampler_function(model_k, torch.zeros(1, 4, 2, 2), torch.tensor([1.0, 0.0]), **ks.extra_options)
    assert seen["model_type"].is_flow and seen["model_type"].sigma_max == 1.0 and seen["eta"] == 0.3
    assert ks.extra_options == spec.resolve(eta=0.3, r1=0.25, r2=0.75, s_noise=values["s_noise"],
                                            noise_type=values["noise_type"], prediction=values["prediction"],
                                            stop_at_sigma_min=values["stop_at_sigma_min"])
    values["r1"] = 0.995  # outside the registry range: a clear error naming the parameter
    with pytest.raises(ValueError, match="r1"):
        cls().get_sampler(**values)


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


def test_docs_name_every_entry_and_node():
    """docs/comfyui.md (the pack's ComfyUI page) names every menu entry and every
    node (its generated tables are current: ``python -m tests.support.workflow_builder``); the
    images that page and the README's ComfyUI section show exist and are small."""
    import re

    with open(os.path.join(REPO, "docs", "comfyui.md"), encoding="utf-8") as f:
        page = f.read()
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        m = re.search(r"<!-- comfyui:start -->\n(.*?)<!-- comfyui:end -->", f.read(), re.S)
    assert m, "README has no comfyui section"
    from seeds_samplers.samplers.cfg_pp import menu_entries

    for text in (page,):
        for spec in menu_entries(cfg_pp=False):
            assert f"`{spec.host_name}`" in text, spec.host_name
        for sid in SCHEDULES:
            assert f"`{SCHEDULES[sid].host_name}`" in text, sid
    classes, names = node_definitions()
    for node_id, cls in classes.items():
        assert f"`{node_id}`" in page, node_id
        assert names[node_id] in page, names[node_id]
    for text in (page, m.group(1)):
        for image in re.findall(r"\]\(((?:\.\./)?docs/images/[^)]+|images/[^)]+)\)", text):
            base = os.path.join(REPO, "docs") if image.startswith("images/") else REPO
            path = os.path.normpath(os.path.join(base, image))
            assert os.path.isfile(path) and os.path.getsize(path) < 300_000, image
