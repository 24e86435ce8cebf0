"""``python -m seeds_samplers bench``: quality vs model calls and sampler overhead.

Quality: every registered solver configuration and k-diffusion's euler, heun, dpmpp_2m,
dpmpp_2m_sde, dpmpp_3m_sde, euler_ancestral and lms on the exact test model at NFE 5,
10, 20, 50, in the SD-like VP and the flow (shift 3) parameterisations, from the same
initial latents. Metrics: W2 distance to the exact mixture for all; RMS error against a
converged probability-flow ODE solve for the deterministic ones.

Overhead: sampler-side time per model call with a near-zero-cost model on an SDXL-size
latent (1x4x128x128), every configuration beside k-diffusion's dpmpp_2m, dpmpp_2m_sde
(torchsde Brownian tree) and euler_ancestral, measured in the same run, printed as
ratios to dpmpp_2m.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch

from ..samplers.registry import SAMPLERS
from .compare import Contender, kdiffusion, ours, quality_table, reference_solve
from .gmm import AnalyticDenoiser
from .metrics import mixture_stats
from .report import pivot_markdown, plot_metric, replace_section

QUALITY_BASELINES = ("euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral", "lms")
OVERHEAD_BASELINES = ("dpmpp_2m", "dpmpp_2m_sde", "euler_ancestral")


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


def deis_target_lines(rows: List[dict], budgets=(10, 20)) -> List[str]:
    """Target: the best DEIS variant at least as accurate as dpmpp_2m (error vs the converged ODE)."""
    out = []
    for b in budgets:
        deis = [r for r in rows if r["nfe"] == b and r["label"].startswith("DEIS") and r["ref_err"] is not None]
        base = [r for r in rows if r["nfe"] == b and r["label"] == "dpmpp_2m"]
        if deis and base:
            best = min(deis, key=lambda r: r["ref_err"])
            ok = best["ref_err"] <= base[0]["ref_err"]
            out.append(f"NFE {b}: best DEIS ({best['label']}) error {best['ref_err']:.2e} vs dpmpp_2m "
                       f"{base[0]['ref_err']:.2e}: {'met' if ok else 'MISSED'}")
    return out


def _schedule(kind: str) -> str:
    return "uniform" if kind == "flow" else "edm_rho"


def quality(kind: str, samples: int, budgets: Sequence[int], seed: int, log=print) -> tuple:
    model = AnalyticDenoiser(kind=kind, shift=3.0 if kind == "flow" else 1.0)
    g = torch.Generator().manual_seed(seed)
    x = model.prior_sample(samples, model.sigma_max, g)
    exact, _ = model.mixture.sample(samples, g)
    floor = mixture_stats(exact, model.mixture).w2
    schedule = _schedule(kind)
    sig_min = model.sigma_min

    def reference(x0):
        start = model.seeds_model_type.prepare_sigmas([model.sigma_max])[0]
        y = reference_solve(model, x0, sig_min, start)
        return model(y, torch.tensor(sig_min, dtype=torch.float64))

    contenders = configurations() + [kdiffusion(k) for k in QUALITY_BASELINES]
    log(f"[{kind}] {samples} samples, schedule {schedule}, exact-sample W2 {floor:.4f}")
    rows = quality_table(contenders, model, x, budgets, schedule, seed, reference, log)
    return rows, floor, schedule


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


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--kinds", nargs="+", default=["vp_discrete", "flow"], choices=("vp_discrete", "edm", "flow"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--readme", type=Path, default=None, help="update this README's bench section and docs/images")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = [f"Command: `python -m seeds_samplers bench --skip-overhead{' --readme README.md' if args.readme else ''}` "
             f"({args.samples} samples, seed {args.seed}). Bold: best in the column; a number in parentheses "
             "is the measured call count where a solver cannot spend the budget exactly."]
    images = []
    overhead_md = None
    if not args.skip_quality:
        for kind in args.kinds:
            rows, floor, schedule = quality(kind, args.samples, args.budgets, args.seed)
            title = {"vp_discrete": "SD-like VP (discrete, scaled-linear betas)", "flow": "flow (CONST, shift 3)",
                     "edm": "EDM"}[kind]
            parts.append(f"### {title}, schedule `{schedule}`\n\nW2 distance to the exact mixture "
                         f"(exact samples: {floor:.4f}):\n\n" + pivot_markdown(rows, "w2", args.budgets))
            parts.append("Error against the converged ODE solution (deterministic solvers; median over samples "
                         "of the per-sample RMS difference):\n\n"
                         + pivot_markdown(rows, "ref_err", args.budgets, digits=4, only_deterministic=True)
                         + "\n\n" + "\n".join(f"- {t}" for t in deis_target_lines(rows)))
            for metric, det in (("w2", False), ("ref_err", True)):
                name = f"bench_{kind}_{metric}.png"
                plot_metric(rows, metric, args.out / name, f"{title}: {metric}", floor if metric == "w2" else None, det)
                images.append(name)
    if not args.skip_overhead:
        rows = overhead()
        overhead_md = (f"Command: `python -m seeds_samplers bench --skip-quality{' --readme README.md' if args.readme else ''}`"
                       " (1×4×128×128 latent, a one-multiply model, 30 steps; minimum over interleaved rounds).\n\n"
                       + overhead_markdown(rows))
        (args.out / "overhead.md").write_text(overhead_md + "\n")
        print("\n" + overhead_md)
    if not args.skip_quality:
        md = "\n\n".join(parts) + "\n"
        (args.out / "bench.md").write_text(md)
        print("\n" + md)
    if args.readme:
        if not args.skip_quality:
            target = args.readme.parent / "docs" / "images"
            target.mkdir(parents=True, exist_ok=True)
            for name in images:
                (target / name).write_bytes((args.out / name).read_bytes())
            replace_section(args.readme, "bench", md + "".join(f"\n![{n}](docs/images/{n})\n" for n in images))
        if overhead_md is not None:
            replace_section(args.readme, "overhead", overhead_md)
        print(f"updated {args.readme}")
    return 0
