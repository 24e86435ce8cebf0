"""Project-level checks: packaging, CLI commands, README kept true, benchmark plumbing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", text, re.S)
    assert m, f"README has no {name} section"
    return m.group(1)


def test_import_adds_no_generic_or_host_modules():
    code = ("import sys, seeds_samplers, seeds_samplers.samplers, seeds_samplers.bench.gmm;"
            "bad = [m for m in ('samplers', 'nodes', 'utils', 'bench', 'comfy', 'modules') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[]"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n# the tests\n(.+?)\n```", readme)
    assert commands, "README quick start has no test command"
    assert commands[0] in (ROOT / ".ci" / "run").read_text()


def test_reference_pages_match_registry():
    from seeds_samplers.bench.docs import reference_markdown, summary_markdown

    readme = (ROOT / "README.md").read_text()
    assert _section(readme, "samplers").strip().startswith(summary_markdown().strip()), (
        "README sampler table is stale: run python -m seeds_samplers docs --readme README.md")
    page = (ROOT / "docs" / "reference.md").read_text()
    assert _section(page, "reference").strip() == reference_markdown().strip(), (
        "docs/reference.md is stale: run python -m seeds_samplers docs --doc docs/reference.md")


def test_every_registered_sampler_documents_every_parameter():
    import inspect

    from seeds_samplers.samplers.registry import SAMPLERS

    for spec in SAMPLERS.values():
        sig = inspect.signature(spec.function)
        for p in spec.params:
            assert p.name in sig.parameters, f"{spec.id}: {p.name} is not an argument of {spec.function.__name__}"
            assert p.description and len(p.description) > 10 and "\n" not in p.description, f"{spec.id}.{p.name}"
            if p.kind in ("int", "float"):  # the hosts' sliders need both ends and a step
                assert None not in (p.minimum, p.maximum, p.step), f"{spec.id}.{p.name}: no slider range"
            default = sig.parameters[p.name].default
            # AMED: None = "the predictor's setting, else the registry default" (a predictor
            # fixes them); test_unset_settings_run_the_registry_default checks what runs
            inherits = spec.family == "amed" and default is None
            assert inherits or default == p.default, f"{spec.id}.{p.name}: registry default differs"
            p.check(p.default)
        for k, v in spec.menu.items():
            spec.resolve(**{k: v})


def _unset_params():
    import inspect

    from seeds_samplers.samplers.registry import SAMPLERS

    return [(spec.id, p.name) for spec in SAMPLERS.values() for p in spec.params
            if inspect.signature(spec.function).parameters[p.name].default is None]


@pytest.mark.parametrize("sampler_id, name", _unset_params())
def test_unset_settings_run_the_registry_default(sampler_id, name):
    """A parameter whose signature default is None (unset: a predictor's setting) runs, when
    no predictor sets it, exactly what its Param's default runs (the registry, the menus and
    docs/reference.md state that default)."""
    import torch

    from seeds_samplers.bench.gmm import AnalyticDenoiser
    from seeds_samplers.samplers.registry import SAMPLERS
    from seeds_samplers.samplers.schedules import edm_sigmas

    spec = SAMPLERS[sampler_id]
    model = AnalyticDenoiser(kind="edm")
    x = model.prior_sample(2, 80.0, torch.Generator().manual_seed(0))
    sig = edm_sigmas(5, 0.002, 80.0)
    default = next(p.default for p in spec.params if p.name == name)
    # settings that act on one plugin base only are checked on that base
    ctx = {"base": "dpmpp_2m"} if name in ("prediction", "lower_order_final") else {}
    unset = spec.function(model, x, sig, disable=True, **ctx)
    given = spec.function(model, x, sig, disable=True, **ctx, **{name: default})
    assert torch.equal(unset, given)
    # and the setting matters: another value gives another sample (else the check is empty)
    other = next(p for p in spec.params if p.name == name)
    alt = {"choice": lambda: next(c for c in other.choices if c != default), "bool": lambda: not default,
           "int": lambda: default - 1 if default - 1 >= other.minimum else default + 1,
           "float": lambda: other.minimum + 0.3 * (other.maximum - other.minimum)}[other.kind]()
    assert not torch.equal(unset, spec.function(model, x, sig, disable=True, **ctx, **{name: alt})), (name, alt)


def test_metrics_separate_exact_from_shrunk_samples():
    from seeds_samplers.bench.gmm import photo_mixture
    from seeds_samplers.bench.metrics import mixture_stats

    mix = photo_mixture()
    g = torch.Generator().manual_seed(0)
    x, comp = mix.sample(1024, g)
    exact = mixture_stats(x, mix)
    # shrink every sample 20% towards its mean: under-dispersed by exactly 0.2 s_k
    means = mix.means[comp]
    shrunk = mixture_stats(means + 0.8 * (x - means), mix)
    expected = float((mix.weights * (0.2 * mix.stds) ** 2).sum().sqrt())
    assert exact.w2 < 0.1 * expected
    assert abs(shrunk.w2 - expected) < 0.1 * expected
    assert exact.weight_tv < 0.06


def test_demo_command_writes_table_plot_and_grid(tmp_path):
    from seeds_samplers.bench import demo
    from seeds_samplers.samplers.registry import SAMPLERS

    assert demo.main(["--samples", "48", "--budgets", "10", "--digits-model", "none", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "demo.md").read_text()
    for spec in SAMPLERS.values():
        assert f"| {spec.title} | ours |" in md
    for base in demo.BASELINES:
        assert f"| {base} | k-diffusion |" in md
    assert (tmp_path / "demo_w2.png").stat().st_size > 5000
    assert (tmp_path / "demo_grid.png").stat().st_size > 5000


@pytest.mark.parametrize("kind", ["vp_discrete", "flow"])
def test_every_configuration_runs_within_budget(kind):
    from seeds_samplers.bench.benchmark import quality

    rows, floor, _ = quality(kind, samples=32, budgets=[10], seed=0, log=lambda s: None)
    assert rows
    for r in rows:
        assert r["calls"] <= 10, r
        assert r["w2"] < 1.0, r  # finite and in the data's scale
        if not r["stochastic"]:
            assert r["ref_err"] is not None and r["ref_err"] < 1.0, r


@pytest.mark.parametrize("page", ["docs/orders.md", "docs/sigma_steps.md", "docs/benchmark.md", "docs/reference.md"])
def test_result_pages_come_from_commands(page):
    """Each results page names the command that writes it, and the images it shows exist."""
    text = (ROOT / page).read_text()
    assert re.search(r"`python (-m seeds_samplers|tests/)[^`]*`", text), f"{page} names no generating command"
    for image in re.findall(r"\]\(((?:docs/)?images/[^)]+)\)", text):
        assert (ROOT / "docs" / image.removeprefix("docs/")).is_file(), image
