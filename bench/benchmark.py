"""``python -m seeds_samplers bench``: distance to the true distribution vs model calls on
several test models, the error against the converged ODE, a parameter sweep, and the
sampler overhead.

Quality (issue "benchmark that cannot be gamed by one model or one seed"): on every test
model of :mod:`.models` (two exact Gaussian mixtures in VP and flow form, and the trained
digits networks), each registered sampler at its dropdown settings, k-diffusion's euler,
euler_ancestral, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m_sde, dpmpp_sde, lms and heun, and --
when ``COMFYUI_ROOT`` names a ComfyUI checkout -- ComfyUI's own seeds_2, seeds_3, er_sde,
sa_solver, res_multistep, deis and ipndm (:mod:`.comfy`), on the host schedules by their
ComfyUI names (:mod:`.host_schedules`), at several NFE budgets, for several noise seeds
(mean ± spread over seeds). Distance: W2 to the exact mixture, or the Frechet distance
on classifier features for the digits (:mod:`seeds_samplers.digits.fd`), each beside its
floor (exact / real samples at the same count). Deterministic solvers also get the RMS
error against a converged probability-flow ODE solve.

Sweep: ``--sweep SAMPLER --set name=v1,v2 ...`` runs every combination of the given
parameter values (others at the dropdown settings) on the test models at NFE 5, 8, 10,
20 and prints mean ± spread per model x NFE and an aggregate rank.

Overhead: sampler-side time per model call with a near-zero-cost model on an SDXL-size
latent (1x4x128x128), every configuration beside k-diffusion's dpmpp_2m, dpmpp_2m_sde
and euler_ancestral, measured in the same run, printed as ratios to dpmpp_2m.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..samplers.registry import SAMPLERS
from ..samplers import registry
from .compare import Contender, kdiffusion, ours
from .grid import floors, mean_sd, run_grid, summarise
from .host_schedules import HOST_SCHEDULES
from .models import DEFAULT_SCHEDULE, MODELS, TestModel, build_model
from .report import fmt_mean_sd, pivot_mean_sd, plot_mean_sd, replace_section_if_present, update_section

QUALITY_BASELINES = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "dpmpp_sde", "lms",
                     "heun")
OVERHEAD_BASELINES = ("dpmpp_2m", "dpmpp_2m_sde", "euler_ancestral")
DEFAULT_BUDGETS = (4, 5, 8, 10, 20, 50)
SWEEP_BUDGETS = (5, 8, 10, 20)
DOC = Path("docs") / "benchmark.md"
DOC_HEADER = """# Benchmark

Written by `python -m seeds_samplers bench` (each section names the command that wrote it;
do not edit by hand). Lower is better everywhere. Cells are mean ± spread (sample standard
deviation) over noise seeds; a seed fixes the initial latents and the noise stream, the
same for every solver. W2: per-dimension 2-Wasserstein distance to the exact Gaussian
mixture (`bench/metrics.py`). FD: Fréchet distance of the digit classifier's penultimate
features to the 1,000 held-out digits (`digits/fd.py`); its *floor* is the FD of as many
real training digits. A number in parentheses is the measured call count where a solver
cannot spend the budget exactly. Schedules are the hosts' own, by their ComfyUI names
(`bench/host_schedules.py`, checked against a ComfyUI checkout by `tests/test_bench.py`).

Test models (`bench/models.py`): `photo8` / `photo8-flow`, the 8-photo mixture in SD's
discrete VP parameterisation and as a flow model (shift 3); `many` / `many-flow`, 100 digits
as means with stds 0.03-0.08 (many components, small spread); `digits-eps` / `digits-flow`,
the trained U-Nets (`seeds_samplers.digits`). Anchors: k-diffusion's samplers from the
`k-diffusion` package (on flow models they run on the model's own sigmas, as that package
does), and, when `COMFYUI_ROOT` names a ComfyUI checkout, ComfyUI's own samplers run in
that checkout's Python (`COMFYUI_PYTHON`; `bench/comfy.py`, arrays exchanged through a
file). The "Targets" lines check the goals of the project's benchmark issue: at 10 and 20
calls our best stochastic dropdown entry against every stochastic anchor, and at 5 and 8
calls our best deterministic entry against ComfyUI's `res_multistep` and k-diffusion's
`dpmpp_2m`. The verdict is paired over seeds (same latents and noise seed for both):
"met" needs the mean per-seed difference to exceed its spread (sections written before
this rule compare the mean ± spread intervals instead).

Commands:

```bash
python -m seeds_samplers bench --readme README.md                    # every model, default budgets
python -m seeds_samplers bench --models digits-eps --schedules karras normal --budgets 5 8 10 20
COMFYUI_ROOT=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/comfy-venv/bin/python python -m seeds_samplers bench ...
python -m seeds_samplers bench --sweep seeds_3 --set eta=0,0.5,1 --set s_noise=0.9,1 --anchors
```

The sweep runs every combination of the `--set` values (other parameters at the dropdown
settings) on the chosen models (default: all) at NFE 5, 8, 10, 20 and prints mean ± spread
per model × NFE and an aggregate rank (mean rank over all cells, and the geometric mean of
the ratio to the best configuration of each cell); `--anchors` ranks the k-diffusion /
ComfyUI samplers of the same kind (stochastic or not) alongside. On a shared 2-core CPU,
pass `--threads 1`: the digits U-Net costs about 3-8 ms per sample and call.
"""
def configurations() -> List[Contender]:
    """Each registered sampler at its dropdown settings, plus its deterministic (eta = 0)
    form and every value of a ``variant`` choice."""
    out = []
    for spec in SAMPLERS.values():
        base = ours(spec.id)
        out.append(base)
        names = {p.name: p for p in spec.params}
        if "variant" in names:
            for v in names["variant"].choices:
                if v != base.params.get("variant", names["variant"].default):
                    out.append(ours(spec.id, f"{spec.title} {v}", variant=v))
        if base.stochastic and "eta" in names:
            out.append(ours(spec.id, f"{spec.title} (eta=0)", eta=0.0))
    return out


class _ZeroCostModel:
    """A near-zero-cost denoiser (one multiply) that still depends on x."""

    def __call__(self, x, sigma, **kw):
        return x * 0.5


def _noise_draws_only(model, x, sigmas, disable=None):
    """Reference row: one Gaussian latent per step and nothing else (the floor of any
    sampler that injects fresh noise at every model call)."""
    for _ in range(len(sigmas) - 1):
        torch.randn_like(x)
    return x


def overhead(steps: int = 30, repeats: int = 7, shape=(1, 4, 128, 128), log=print) -> List[dict]:
    """Seconds per model call (sampler work plus a one-multiply model), min over ``repeats``."""
    model = _ZeroCostModel()
    x = torch.randn(shape)
    sig = torch.linspace(14.6, 0.03, steps).tolist() + [0.0]
    sig = torch.tensor(sig)
    contenders = []
    for c in configurations():
        contenders.append(c)
        if c.stochastic:
            contenders.append(Contender(c.label + " brownian", c.fn, {**c.params, "noise_type": "brownian"},
                                        c.stages, c.final_call, True, "ours"))
    for name in OVERHEAD_BASELINES:
        contenders.append(kdiffusion(name))
    contenders.append(Contender("torch.randn only (one latent per call)", _noise_draws_only, {},
                                final_call=False, source="reference"))
    runs = []
    for c in contenders:
        kw = dict(c.params)
        if c.source == "ours" and c.stochastic:
            kw.setdefault("noise_type", "gaussian")
            kw["extra_args"] = {"seed": 0}
        runs.append((c, kw))
        c.fn(model, x, sig, disable=True, **kw)  # warm-up
    # Interleaved repeats: every contender sees the same machine state in each round,
    # and the minimum over rounds drops the rounds disturbed by other load.
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for j, (c, kw) in enumerate(runs):
            best[j] = min(best[j], _time(lambda: c.fn(model, x, sig, disable=True, **kw)))
    rows = []
    for (c, _), t in zip(runs, best):
        per_call = t / c.calls(steps)  # includes the one-multiply model, the same for every contender
        rows.append(dict(label=c.label, source=c.source, stochastic=c.stochastic, calls=c.calls(steps), per_call=per_call))
        log(f"  {c.label:34s} {per_call * 1e6:9.1f} us/call")
    base = next(r["per_call"] for r in rows if r["label"] == "dpmpp_2m")
    sde = next(r["per_call"] for r in rows if r["label"] == "dpmpp_2m_sde")
    for r in rows:
        r["ratio"] = r["per_call"] / base
        r["ratio_sde"] = r["per_call"] / sde
    return rows


def _time(fn: Callable) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def overhead_markdown(rows: List[dict]) -> str:
    lines = ["| solver | source | µs per call | × dpmpp_2m | × dpmpp_2m_sde | target |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        if r["source"] != "ours":
            target = "no model call, no solver: the noise draw alone" if r["source"] == "reference" else ""
        elif r["label"].endswith("brownian"):
            target = "≤ 0.5 × dpmpp_2m_sde: " + ("met" if r["ratio_sde"] <= 0.5 else "MISSED")
        elif r["stochastic"]:
            target = "≤ 3 × dpmpp_2m: " + ("met" if r["ratio"] <= 3 else "MISSED")
        else:
            target = "≤ 2 × dpmpp_2m: " + ("met" if r["ratio"] <= 2 else "MISSED")
        lines.append(f"| {r['label']} | {r['source']} | {r['per_call'] * 1e6:.1f} | {r['ratio']:.2f} | "
                     f"{r['ratio_sde']:.3f} | {target} |")
    return "\n".join(lines)




# --- contenders ------------------------------------------------------------------------


def dropdown_contenders() -> List[Contender]:
    """Every registered sampler at its dropdown settings."""
    return [ours(spec.id) for spec in SAMPLERS.values()]


def anchor_contenders(comfy: bool = True) -> List[Contender]:
    out = [kdiffusion(k) for k in QUALITY_BASELINES]
    if comfy:
        from .comfy import comfy_contenders, comfy_root

        if comfy_root() is not None:
            out += comfy_contenders()
    return out


# --- targets and losses ------------------------------------------------------------------


def _best(cells: Sequence[dict], **where: Any) -> Optional[dict]:
    sel = [c for c in cells if all(c[k] == v for k, v in where.items()) and c["mean"] is not None
           and math.isfinite(c["mean"])]
    return min(sel, key=lambda c: c["mean"]) if sel else None


def _verdict(mine: dict, other: dict) -> str:
    """Paired over the seeds both cells share (same latents, same noise seed): met / MISSED
    when the mean per-seed difference exceeds its spread, else level. Without two shared
    seeds: the mean ± sd intervals must lie apart."""
    a, b = mine.get("values") or {}, other.get("values") or {}
    shared = [s for s in a if s in b and a[s] is not None and b[s] is not None]
    if len(shared) >= 2:
        d_mean, d_sd = mean_sd([a[s] - b[s] for s in shared])
        if not math.isfinite(d_mean):
            return "MISSED (diverged)" if not math.isfinite(mine["mean"]) else "met (the anchor diverged)"
        paired = f"paired difference {d_mean:+.3g} ± {d_sd:.2g} over {len(shared)} seeds"
        if d_mean + d_sd < 0:
            return f"met ({paired})"
        if d_mean - d_sd > 0:
            return f"MISSED ({paired})"
        return f"MISSED: level within the spread ({paired})"
    if mine["mean"] + mine["sd"] < other["mean"] - other["sd"]:
        return "met (beyond the spread)"
    if mine["mean"] - mine["sd"] > other["mean"] + other["sd"]:
        return "MISSED (behind beyond the spread)"
    gap = 100 * (mine["mean"] / other["mean"] - 1) if other["mean"] else 0.0
    return f"MISSED: level within the spread (ours {gap:+.0f}%)"


def target_lines(cells: Sequence[dict], stochastic_budgets=(10, 20), deterministic_budgets=(5, 8)) -> List[str]:
    """Issue targets: at 10 and 20 calls our best stochastic dropdown entry vs every
    stochastic anchor; at 5 and 8 calls our best deterministic entry vs ComfyUI's
    res_multistep and k-diffusion's dpmpp_2m."""
    out = []
    for b in stochastic_budgets:
        mine = _best(cells, nfe=b, source="ours", stochastic=True)
        if mine is None:
            continue
        for c in cells:
            if c["nfe"] == b and c["source"] != "ours" and c["stochastic"] and c["mean"] is not None:
                out.append(f"target NFE {b}: {mine['label']} {fmt_mean_sd(mine['mean'], mine['sd'])} vs "
                           f"{c['label']} ({c['source']}) {fmt_mean_sd(c['mean'], c['sd'])}: {_verdict(mine, c)}")
    for b in deterministic_budgets:
        mine = _best(cells, nfe=b, source="ours", stochastic=False)
        if mine is None:
            continue
        for label, source in (("res_multistep", "ComfyUI"), ("dpmpp_2m", "k-diffusion")):
            c = _best(cells, nfe=b, label=label, source=source)
            if c is not None:
                ok = mine["mean"] <= c["mean"]
                out.append(f"target NFE {b}: {mine['label']} {fmt_mean_sd(mine['mean'], mine['sd'])} vs {label} "
                           f"({source}) {fmt_mean_sd(c['mean'], c['sd'])}: " + ("met" if ok else "MISSED")
                           + f" (at least as close; {_verdict(mine, c)})")
    return out


def loss_lines(cells: Sequence[dict], budgets: Sequence[int], metric: str) -> List[str]:
    """Where our best entry is behind the best other solver (distance, and ODE error)."""
    out = []
    for b in budgets:
        mine = _best(cells, nfe=b, source="ours")
        others = [c for c in cells if c["nfe"] == b and c["source"] != "ours"]
        theirs = _best(others)
        if mine and theirs and theirs["mean"] < mine["mean"]:
            out.append(f"NFE {b}: best overall is {theirs['label']} ({theirs['source']}) {metric} "
                       f"{fmt_mean_sd(theirs['mean'], theirs['sd'])}; our best, {mine['label']}, "
                       f"{fmt_mean_sd(mine['mean'], mine['sd'])} (+{100 * (mine['mean'] / theirs['mean'] - 1):.0f}%)")
        det = [c for c in cells if c["nfe"] == b and not c["stochastic"] and c.get("ref_mean") is not None]
        m = [c for c in det if c["source"] == "ours"]
        t = [c for c in det if c["source"] != "ours"]
        if m and t:
            bm, bt = min(m, key=lambda c: c["ref_mean"]), min(t, key=lambda c: c["ref_mean"])
            if bt["ref_mean"] < bm["ref_mean"]:
                out.append(f"NFE {b}: ODE error: {bt['label']} ({bt['source']}) {bt['ref_mean']:.2e} beats our best "
                           f"{bm['label']} {bm['ref_mean']:.2e}")
    return out


# --- quality -----------------------------------------------------------------------------


def quality_section(model: TestModel, schedule: str, cells: List[dict], floor: tuple, budgets: Sequence[int],
                    samples: int, seeds: Sequence[int], command: str, image: Optional[str],
                    ref_samples: int = 0) -> str:
    metric = model.metric
    budgets = sorted(budgets)
    parts = [f"### {model.title}, schedule `{schedule}`", "",
             f"Command: `{command}` ({samples} samples per seed, seeds {', '.join(map(str, seeds))}).", "",
             f"{metric} (floor: {metric} of {samples} {'real digits' if metric == 'FD' else 'exact samples'} = "
             f"{fmt_mean_sd(*floor)}):", "", pivot_mean_sd(cells, budgets, "mean"), ""]
    if any(c.get("ref_mean") is not None for c in cells):
        parts += [f"Error against the converged ODE solution (deterministic solvers; median over samples of the "
                  f"per-sample RMS difference, on the first {ref_samples} latents of each seed; the reference is "
                  f"RK4 in half-log-SNR with {model.reference_steps} steps, which differs from "
                  f"{2 * model.reference_steps} steps by {getattr(model, 'reference_check', None) or 0:.1e}; the "
                  f"converged solution ends at the model's sigma_min, so a schedule that stops higher keeps that "
                  f"difference):", "",
                  pivot_mean_sd(cells, budgets, "ref_mean", only_deterministic=True), ""]
    targets = target_lines(cells)
    if targets:
        parts += ["Targets:", ""] + [f"- {t}" for t in targets] + [""]
    losses = loss_lines(cells, budgets, metric)
    parts += ["Where ours lose:", ""] + ([f"- {t}" for t in losses] or ["- nowhere in this table"]) + [""]
    if image:
        parts.append(f"![{model.name} {schedule}](images/{image})")
    return "\n".join(parts)


def quality_cells(model_name: str, schedule: str, budgets: Sequence[int], seeds: Sequence[int], samples: int,
            ref_samples: int, variants: bool = False, comfy: bool = True, log=print,
            ref_steps: Optional[int] = None, on_partial: Optional[Callable] = None) -> tuple:
    """(cells, floor, model) for one test model and schedule. ``on_partial(cells, floor,
    model, budgets done)`` is called after each budget but the last."""
    model = build_model(model_name)
    if ref_steps:
        model.reference_steps = ref_steps
    contenders = (configurations() if variants else dropdown_contenders()) + anchor_contenders(comfy)
    log(f"[{model.name} / {schedule}] {samples} samples x {len(seeds)} seeds, "
        f"{len(contenders)} contenders, budgets {list(budgets)}")
    t = time.time()
    model.reference_check = None
    if ref_samples:
        from .compare import median_error
        from .grid import reference_final

        x = model.prior(min(4, ref_samples), seeds[0])
        model.reference_check = median_error(reference_final(model, x),
                                             reference_final(model, x, 2 * model.reference_steps))
    floor_cache: List[tuple] = []

    def partial(rows: List[dict]) -> None:
        done = sorted({r["nfe"] for r in rows}, key=list(budgets).index)
        if on_partial is None or len(done) == len(budgets):
            return
        if not floor_cache:
            floor_cache.append(floors(model, samples, seeds))
        on_partial(summarise(rows), floor_cache[0], model, done)

    rows = run_grid(model, contenders, budgets, seeds, schedule, samples, ref_samples, log, on_budget=partial)
    cells = summarise(rows)
    floor = floor_cache[0] if floor_cache else floors(model, samples, seeds)
    if ref_samples:
        from .compare import median_error
        from .grid import reference_final

        x = model.prior(min(4, ref_samples), seeds[0])
        model.reference_check = median_error(reference_final(model, x),
                                             reference_final(model, x, 2 * model.reference_steps))
    log(f"[{model.name} / {schedule}] done in {time.time() - t:.0f} s; floor {fmt_mean_sd(*floor)}")
    return cells, floor, model


def quality(kind: str, samples: int, budgets: Sequence[int], seed: int = 0, log=print) -> tuple:
    """One seed on the 8-photo mixture (``kind`` ``"vp_discrete"`` or ``"flow"``) at its
    default schedule: (rows with ``w2`` and ``ref_err``, exact-sample W2, schedule)."""
    name = {"vp_discrete": "photo8", "flow": "photo8-flow"}[kind]
    model = build_model(name)
    schedule = model.default_schedule
    contenders = configurations() + anchor_contenders(comfy=False)
    rows = run_grid(model, contenders, budgets, [seed], schedule, samples, min(samples, 64), log)
    for r in rows:
        r["w2"] = r["value"]
    return rows, model.floor(samples, seed), schedule


# --- sweep -------------------------------------------------------------------------------


def _parse_value(p: registry.Param, text: str) -> Any:
    if p.kind == "bool":
        low = text.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{p.name} is true/false, got {text!r}")
        return low in ("true", "1", "yes")
    if p.kind == "int":
        return p.check(int(text))
    if p.kind == "float":
        return p.check(float(text))
    return p.check(text.strip())


def sweep_grid(sampler: str, sets: Sequence[str]) -> List[Dict[str, Any]]:
    """Every combination of ``name=v1,v2,...`` values over the sampler's dropdown settings."""
    spec = registry.get(sampler)
    by_name = {p.name: p for p in spec.params}
    axes = []
    for s in sets:
        if "=" not in s:
            raise ValueError(f"--set takes name=v1,v2,..., got {s!r}")
        name, values = s.split("=", 1)
        name = name.strip()
        if name not in by_name:
            raise ValueError(f"{sampler} has no parameter {name!r}; it has {list(by_name)}")
        axes.append([(name, _parse_value(by_name[name], v)) for v in values.split(",") if v.strip()])
    combos = []
    for combo in itertools.product(*axes) if axes else [()]:
        params = {**spec.dropdown, **dict(combo)}
        spec.resolve(**params)  # validates the combination
        combos.append(params)
    return combos


def sweep_label(sampler: str, params: Dict[str, Any], varied: Sequence[str]) -> str:
    spec = registry.get(sampler)
    shown = ", ".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in varied)
    return f"{spec.title} [{shown}]" if shown else f"{spec.title} [dropdown]"


def rank_table(cells: Sequence[dict]) -> List[tuple]:
    """(label, source, mean rank, geometric-mean ratio to the best, cells) over every
    (model, schedule, NFE) cell; lower is better."""
    groups: Dict[tuple, List[dict]] = {}
    for c in cells:
        groups.setdefault((c["model"], c["schedule"], c["nfe"]), []).append(c)
    ranks: Dict[tuple, List[float]] = {}
    ratios: Dict[tuple, List[float]] = {}
    for group in groups.values():
        finite = [c for c in group if c["mean"] is not None and math.isfinite(c["mean"])]
        if not finite:
            continue
        best = min(c["mean"] for c in finite)

        def val(c):
            return c["mean"] if c["mean"] is not None and math.isfinite(c["mean"]) else math.inf

        for c in group:  # ties (identical results) share their average rank
            below = sum(1 for o in group if val(o) < val(c))
            equal = sum(1 for o in group if val(o) == val(c))
            ranks.setdefault((c["label"], c["source"]), []).append(below + (equal + 1) / 2)
        for c in group:
            key = (c["label"], c["source"])
            ok = c["mean"] is not None and math.isfinite(c["mean"]) and best > 0
            ratios.setdefault(key, []).append(math.log(c["mean"] / best) if ok else math.log(1e3))
    out = [(k[0], k[1], sum(v) / len(v), math.exp(sum(ratios[k]) / len(ratios[k])), len(v)) for k, v in ranks.items()]
    return sorted(out, key=lambda r: (r[2], r[3]))


def sweep(sampler: str, sets: Sequence[str], models: Sequence[str], schedules: Optional[Sequence[str]],
          budgets: Sequence[int], seeds: Sequence[int], samples: int, digits_samples: int, anchors: bool,
          comfy: bool, log=print) -> tuple:
    combos = sweep_grid(sampler, sets)
    varied = [s.split("=", 1)[0].strip() for s in sets]
    spec = registry.get(sampler)
    contenders = [ours(spec.id, sweep_label(sampler, p, varied), **p) for p in combos]
    if anchors:
        contenders += [c for c in anchor_contenders(comfy) if c.stochastic == spec.is_stochastic(**spec.dropdown)]
    all_cells = []
    for name in models:
        model = build_model(name)
        for schedule in (schedules or [model.default_schedule]):
            n = digits_samples if model.metric == "FD" else samples
            log(f"[sweep {sampler}] {name} / {schedule}: {len(contenders)} configurations x {len(seeds)} seeds, {n} samples")
            rows = run_grid(model, contenders, budgets, seeds, schedule, n, 0, log=lambda s: None)
            all_cells += summarise(rows)
    lines = []
    for name in models:
        for schedule in sorted({c["schedule"] for c in all_cells if c["model"] == name}):
            sel = [c for c in all_cells if c["model"] == name and c["schedule"] == schedule]
            lines += [f"#### {name}, schedule `{schedule}`", "", pivot_mean_sd(sel, budgets), ""]
    ranked = rank_table(all_cells)
    lines += ["#### Aggregate rank (mean rank over every model x NFE cell; ratio = geometric mean of "
              "distance / best distance in the cell)", "", "| configuration | source | mean rank | ratio to best | cells |",
              "|---|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.3f} | {r[4]} |" for r in ranked]
    return "\n".join(lines), all_cells


# --- command -----------------------------------------------------------------------------


def _command(argv: Sequence[str]) -> str:
    return "python -m seeds_samplers bench " + " ".join(shlex.quote(a) for a in argv)


def readme_summary(doc: Path) -> str:
    """The README's bench section: a pointer to the full tables and every target line."""
    text = doc.read_text()
    out = [f"Command: `python -m seeds_samplers bench --readme README.md` writes the full tables and plots to "
           f"[{doc.as_posix()}]({doc.as_posix()}); the target lines of every test model, copied from there:", ""]
    for m in re.finditer(r"<!-- (bench-model-[^ ]+):start -->(.*?)<!-- \1:end -->", text, re.S):
        body = m.group(2)
        head = re.search(r"^### (.*)$", body, re.M)
        targets = [ln for ln in body.splitlines() if ln.startswith("- target")]
        image = re.search(r"!\[[^\]]*\]\(images/([^)]+)\)", body)
        if head:
            out += [f"**{head.group(1)}**", ""] + (targets or ["- (no target lines: no anchors in this run)"]) + [""]
        if image:
            out += [f"![{image.group(1)}](docs/images/{image.group(1)})", ""]
    return "\n".join(out)


class _doc_lock:
    """An exclusive advisory lock beside ``path`` (POSIX; a no-op elsewhere)."""

    def __init__(self, path: Path):
        import hashlib
        import tempfile

        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        self.path = Path(tempfile.gettempdir()) / f"seeds_samplers_bench_{digest}.lock"

    def __enter__(self):
        self.f = None
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = open(self.path, "w")
            fcntl.flock(self.f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="test models (default: all)")
    ap.add_argument("--schedules", nargs="+", default=None,
                    help=f"host schedules ({', '.join(HOST_SCHEDULES)}), registry ids, or 'all' "
                         "(default: each model's own: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_SCHEDULE.items()) + ")")
    ap.add_argument("--budgets", type=int, nargs="+", default=None,
                    help=f"NFE budgets (default {list(DEFAULT_BUDGETS)}; sweep {list(SWEEP_BUDGETS)})")
    ap.add_argument("--seeds", type=int, default=3, help="noise seeds per cell (default 3)")
    ap.add_argument("--samples", type=int, default=1024, help="samples per seed on the mixtures (default 1024)")
    ap.add_argument("--digits-samples", type=int, default=256, help="samples per seed on the digits models (default 256)")
    ap.add_argument("--ref-samples", type=int, default=None,
                    help="latents per seed for the ODE-error reference (default 256 mixtures, 32 digits; 0 = off)")
    ap.add_argument("--ref-steps", type=int, default=None,
                    help="RK4 steps of the converged ODE reference (default 400 mixtures, 48 digits)")
    ap.add_argument("--variants", action="store_true", help="also each sampler's eta=0 form and variant choices")
    ap.add_argument("--no-comfy", action="store_true", help="skip ComfyUI's samplers even when COMFYUI_ROOT is set")
    ap.add_argument("--sweep", metavar="SAMPLER", default=None, help="sweep this sampler's parameters (see --set)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=V1,V2",
                    help="sweep values of one parameter (repeatable; others at the dropdown settings)")
    ap.add_argument("--anchors", action="store_true", help="sweep: also rank the anchors of the same kind")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--readme", type=Path, default=None,
                    help="write docs/benchmark.md and docs/images/bench_* beside this README and update its "
                         "bench and overhead sections")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    seeds = list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    schedules = None
    if args.schedules:
        schedules = list(HOST_SCHEDULES) if args.schedules == ["all"] else args.schedules
    command = _command(argv)

    if args.sweep:
        try:
            md, _ = sweep(args.sweep, args.sets, args.models, schedules, args.budgets or SWEEP_BUDGETS, seeds,
                          args.samples, args.digits_samples, args.anchors, not args.no_comfy)
        except ValueError as e:
            ap.error(str(e))
        md = f"Command: `{command}`\n\n" + md + "\n"
        (args.out / f"sweep_{args.sweep}.md").write_text(md)
        print("\n" + md)
        if args.readme:
            doc = args.readme.parent / DOC
            update_section(doc, f"sweep-{args.sweep}", f"## Sweep: {args.sweep}\n\n" + md, DOC_HEADER)
            print(f"updated {doc}")
        return 0

    budgets = args.budgets or list(DEFAULT_BUDGETS)
    if not args.skip_quality:
        for name in args.models:
            for schedule in (schedules or [DEFAULT_SCHEDULE[name]]):
                digits = name.startswith("digits")
                n = args.digits_samples if digits else args.samples
                ref_n = args.ref_samples if args.ref_samples is not None else (32 if digits else 256)
                image = f"bench_{name}_{schedule}.png"

                def write(cells, floor, model, done, name=name, schedule=schedule, n=n, ref_n=ref_n, image=image):
                    plot_mean_sd(cells, args.out / image, f"{model.title}, {schedule}: {model.metric} "
                                 f"(mean ± spread over {len(seeds)} seeds)", model.metric, floor=floor)
                    body = quality_section(model, schedule, cells, floor, list(done), n, seeds, command, image,
                                           min(ref_n, n))
                    if list(done) != list(budgets):
                        body += (f"\n\n(Partial: the run was still going; budgets {list(done)} of "
                                 f"{list(budgets)} are done.)")
                    (args.out / f"bench_{name}_{schedule}.md").write_text(body + "\n")
                    print("\n" + body + "\n", flush=True)
                    if args.readme:  # write as we go: a long run keeps what it finished
                        doc = args.readme.parent / DOC
                        images = doc.parent / "images"
                        images.mkdir(parents=True, exist_ok=True)
                        (images / image).write_bytes((args.out / image).read_bytes())
                        with _doc_lock(doc):  # parallel bench runs may share the page
                            update_section(doc, f"bench-model-{name}-{schedule}", body, DOC_HEADER)
                            replace_section_if_present(args.readme, "bench", readme_summary(doc))

                cells, floor, model = quality_cells(name, schedule, budgets, seeds, n, min(ref_n, n), args.variants,
                                                    not args.no_comfy, ref_steps=args.ref_steps, on_partial=write)
                write(cells, floor, model, budgets)
    overhead_md = None
    if not args.skip_overhead:
        rows = overhead()
        overhead_md = (f"Command: `python -m seeds_samplers bench --skip-quality{' --readme README.md' if args.readme else ''}`"
                       " (1×4×128×128 latent, a one-multiply model, 30 steps; minimum over interleaved rounds).\n\n"
                       + overhead_markdown(rows))
        (args.out / "overhead.md").write_text(overhead_md + "\n")
        print("\n" + overhead_md)
        if args.readme:
            update_section(args.readme.parent / DOC, "bench-overhead", "## Sampler overhead\n\n" + overhead_md,
                           DOC_HEADER)
            replace_section_if_present(args.readme, "overhead", overhead_md)
    if args.readme:
        print(f"updated {args.readme} and {args.readme.parent / DOC}")
    return 0
