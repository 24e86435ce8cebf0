"""Benchmark cells: every contender at every NFE budget on one test model and schedule,
for several noise seeds, summarised as mean ± spread.

A seed fixes the initial latents (``model.prior(samples, seed)``) and the noise stream of
the stochastic solvers; every contender sees the same latents and the same kind of noise
for that seed. The spread is the sample standard deviation over the seeds.

For deterministic contenders the error against a converged solve of the probability-flow
ODE (:func:`.compare.reference_solve`, then the final denoise at sigma_min) is measured on
the first ``ref_samples`` latents of each seed.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from .compare import Contender, median_error, schedule_for, reference_solve
from .models import TestModel

__all__ = ["run_grid", "summarise", "floors", "noise_seed", "mean_sd"]


def noise_seed(seed: int) -> int:
    return 1_000_003 * (seed + 1)


def mean_sd(values: Sequence[float]) -> tuple:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    if any(not math.isfinite(v) for v in vals):
        return math.inf, math.inf
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def reference_final(model: TestModel, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
    """The converged ODE solution from ``x`` (at sigma_max) to sigma_min, then D(x, sigma_min)."""
    mt = model.model_type
    start = mt.prepare_sigmas([mt.sigma_max])[0]
    y = reference_solve(model.denoiser, x, mt.sigma_min, start, steps or model.reference_steps, model_type=mt)
    with torch.inference_mode():
        return model.denoiser(y.to(x.dtype), torch.tensor(mt.sigma_min, dtype=torch.float64)).to(torch.float64)


def run_grid(model: TestModel, contenders: Sequence[Contender], budgets: Sequence[int], seeds: Sequence[int],
             schedule: str, samples: int, ref_samples: int = 0, log: Callable[[str], None] = print,
             on_budget: Optional[Callable[[List[dict]], None]] = None) -> List[dict]:
    """One row per (contender, budget, seed): {model, schedule, label, source, stochastic,
    nfe, calls, seed, value, ref_err}. Budgets run in the given order (all seeds of a
    budget before the next budget), so an interrupted run still has complete cells;
    ``on_budget(rows so far)`` is called after each budget. ComfyUI contenders (source
    ``"ComfyUI"``) run in one subprocess per budget (:mod:`.comfy`). Scoring waits until
    the model's metric is available (``model.ready()``: the digits classifier may still
    be training when generation starts)."""
    rows: List[dict] = []
    pending: List[tuple] = []
    local = [c for c in contenders if c.source != "ComfyUI"]
    comfy = [c for c in contenders if c.source == "ComfyUI"]
    need_ref = ref_samples > 0 and any(not c.stochastic for c in contenders)
    xs = {seed: model.prior(samples, seed) for seed in seeds}
    refs: Dict[int, torch.Tensor] = {}
    if need_ref:
        for seed in seeds:
            refs[seed] = reference_final(model, xs[seed][:ref_samples])

    def flush(final: bool) -> None:
        if pending and (final or model.ready()):
            for meta, out in pending:
                meta["value"] = model.score(out)
                rows.append(meta)
                log(_line(meta))
            pending.clear()

    for nfe in budgets:
        jobs: List[Dict[str, Any]] = []
        job_keys: List[tuple] = []
        for seed in seeds:
            x = xs[seed]
            for c in local:
                sig = schedule_for(model.denoiser, c.intervals_for(nfe), schedule)
                before = model.calls
                with torch.inference_mode():
                    out = c(model.denoiser, x, sig, noise_seed(seed))
                pending.append((_row(model, schedule, c, nfe, model.calls - before, seed, out, refs.get(seed),
                                     ref_samples), out))
            for c in comfy:
                sig = schedule_for(model.denoiser, c.intervals_for(nfe), schedule)
                jobs.append(dict(sampler=c.params["comfy"], x=x, sigmas=sig, noise_seed=noise_seed(seed),
                                 stochastic=c.stochastic))
                job_keys.append((c, seed))
        if jobs:
            from .comfy import run_comfy_jobs

            log(f"  NFE {nfe}: running {len(jobs)} ComfyUI jobs in the checkout's Python ...")
            for (c, seed), (out, calls) in zip(job_keys, run_comfy_jobs(model, jobs)):
                pending.append((_row(model, schedule, c, nfe, calls, seed, out, refs.get(seed), ref_samples), out))
        flush(final=False)
        if on_budget is not None and not pending:
            on_budget(rows)
    flush(final=True)
    return rows


def _row(model, schedule, c, nfe, calls, seed, out, ref, ref_samples) -> dict:
    row = dict(model=model.name, schedule=schedule, label=c.label, source=c.source, stochastic=c.stochastic,
               nfe=nfe, calls=calls, seed=seed, value=None, ref_err=None)
    if ref is not None and not c.stochastic:
        row["ref_err"] = median_error(out[:ref_samples], ref)
    return row


def _line(r: dict) -> str:
    ref = f"  ref={r['ref_err']:.2e}" if r["ref_err"] is not None else ""
    return (f"  [{r['model']} {r['schedule']} seed {r['seed']}] NFE {r['nfe']:3d}  {r['label'][:34]:34s} "
            f"{r['source'][:6]:6s} calls={r['calls']:3d}  {r['value']:.4f}{ref}")


def summarise(rows: Sequence[dict]) -> List[dict]:
    """Mean ± spread over seeds: one cell per (model, schedule, label, source, nfe)."""
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["schedule"], r["label"], r["source"], r["nfe"]), []).append(r)
    cells = []
    for (m, sch, label, source, nfe), rs in groups.items():
        mean, sd = mean_sd([r["value"] for r in rs])
        rmean, rsd = mean_sd([r["ref_err"] for r in rs])
        cells.append(dict(model=m, schedule=sch, label=label, source=source, nfe=nfe, stochastic=rs[0]["stochastic"],
                          calls=max(r["calls"] for r in rs), mean=mean, sd=sd, n=len(rs), ref_mean=rmean, ref_sd=rsd,
                          values={r["seed"]: r["value"] for r in rs}))
    return cells


def floors(model: TestModel, samples: int, seeds: Sequence[int]) -> tuple:
    """(mean, sd) of the distance of exact / real samples, at the same sample count."""
    return mean_sd([model.floor(samples, s) for s in seeds])
