"""Menu variants (samplers/registry.py, MenuVariant): further menu entries of a registered
sampler at other settings. Each is listed by every host right after its sampler, runs the
sampler's function at the sampler's menu settings updated by its own, has no node or CFG++
form of its own, and is a contender of the benchmark."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seeds_samplers.bench.contenders import menu_contenders
from seeds_samplers.bench.docs import reference_markdown, summary_markdown
from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.samplers.cfg_pp import cfg_pp_forms, menu_entries
from seeds_samplers.samplers.registry import SAMPLERS, MenuVariant, SamplerSpec, menu_variants, register
from seeds_samplers.samplers.schedules import SCHEDULES

VARIANTS = [(base, v) for base in SAMPLERS.values() for v in base.variants]


def test_some_sampler_has_variants():
    assert VARIANTS, "no menu variant is registered"


def test_entries_are_unique_and_each_variant_follows_its_sampler():
    entries = menu_entries()
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    for base, v in VARIANTS:
        i = ids.index(base.id)
        assert v.id in ids[i + 1:i + 1 + len(base.variants)]
        assert v.id not in SAMPLERS  # no node, no reference section of its own
    assert not {v.id for _, v in VARIANTS} & {f.id for f in cfg_pp_forms()}


@pytest.mark.parametrize("base,variant", VARIANTS, ids=[v.id for _, v in VARIANTS])
def test_a_variant_runs_its_samplers_function_at_the_merged_settings(base, variant):
    (spec,) = [s for s in menu_variants(base) if s.id == variant.id]
    assert spec.function is base.function and spec.params == base.params and spec.title == variant.title
    settings = spec.menu_settings()
    assert settings == base.resolve(**{**base.menu, **variant.menu})
    assert settings != base.menu_settings()  # a variant differs from the sampler's own entry
    # and it runs: the same samples as the sampler called with those settings
    model = AnalyticDenoiser(kind="vp_discrete")
    sig = SCHEDULES["logsnr_uniform"](6, model.seeds_model_type)
    x = model.prior_sample(8, float(sig[0]), torch.Generator().manual_seed(0))
    a = spec.function(model, x, sig, extra_args={"seed": 1}, disable=True, **settings)
    b = base.function(model, x.clone(), sig, extra_args={"seed": 1}, disable=True,
                      **base.resolve(**{**base.menu, **variant.menu}))
    assert torch.isfinite(a).all() and torch.equal(a, b)


def test_register_refuses_a_taken_id_or_invalid_settings():
    base = next(iter(SAMPLERS.values()))
    name = next(p for p in base.params if p.kind in ("int", "float"))
    clash = dataclasses.replace(base, id="ss_test_variant_owner", variants=(
        MenuVariant(base.id, "clash", "an id that is taken", {}),))
    with pytest.raises(ValueError, match="taken"):
        register(clash)
    bad = dataclasses.replace(base, id="ss_test_variant_owner", variants=(
        MenuVariant("ss_test_variant", "bad", "out of range", {name.name: "not a number"}),))
    with pytest.raises(ValueError, match=name.name):
        register(bad)
    assert "ss_test_variant_owner" not in SAMPLERS
    owner, variant = VARIANTS[0]
    with pytest.raises(ValueError, match="taken by a menu variant"):  # a sampler named like a variant
        register(dataclasses.replace(base, id=variant.id, variants=()))
    register(owner)  # the same spec again is no clash with its own variants
    assert variant.id not in SAMPLERS


def test_benchmark_and_docs_list_every_variant():
    contenders = {c.label: c for c in menu_contenders()}
    table, reference = summary_markdown(), reference_markdown()
    for base, v in VARIANTS:
        c = contenders[v.title]
        assert c.fn is base.function and c.params == {**base.menu, **v.menu} and c.source == "ours"
        spec = next(s for s in menu_variants(base) if s.id == v.id)
        assert c.stochastic == spec.is_stochastic(**spec.menu)
        assert f"| `{spec.host_name}` | {v.title} |" in table
        assert f"`{spec.host_name}`" in reference


def test_spec_without_variants_lists_none():
    spec = SamplerSpec(id="x", function=lambda *a, **k: None, family="x", title="X", summary="", params=())
    assert menu_variants(spec) == []


def test_a_table_states_every_setting_the_menu_entries_of_a_sampler_differ_in():
    """A decided table's settings line (bench/decide.py) states, for a row of ours, its menu
    settings and the value it ran of each parameter another menu entry of the same sampler sets:
    ``ss_er_sde`` takes ``midpoint_above_h`` from the parameter's default, ``ss_er_sde_3m`` sets
    it, so both rows state it (a change of that default shows in the tables written after it)."""
    from seeds_samplers.bench.contenders import menu_contenders, shown_settings
    from seeds_samplers.samplers.registry import get

    rows = {c.entry.id: shown_settings(c) for c in menu_contenders()}
    default = get("er_sde").resolve()["midpoint_above_h"]
    assert "midpoint_above_h" not in get("er_sde").menu
    assert rows["er_sde"]["midpoint_above_h"] == default
    assert rows["er_sde_3m"]["order"] == 3 and rows["er_sde"]["order"] == 2
    assert rows["seeds_2"] == dict(get("seeds_2").menu)  # a sampler without menu variants: its menu
