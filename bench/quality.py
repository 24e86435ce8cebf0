"""The quality benchmark of one test model and schedule: every contender at each NFE budget
over several seeds (distance to the true distribution, ODE error), and its markdown section."""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Sequence

from .compare import median_error
from .contenders import anchor_contenders, configurations, menu_contenders
from .grid import floors, reference_final, run_grid, summarise
from .models import TestModel, build_model
from .report import fmt_mean_sd, pivot_mean_sd
from .targets import loss_lines, target_lines


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
    contenders = (configurations() if variants else menu_contenders()) + anchor_contenders(comfy)
    log(f"[{model.name} / {schedule}] {samples} samples x {len(seeds)} seeds, "
        f"{len(contenders)} contenders, budgets {list(budgets)}")
    t = time.time()
    model.reference_check = None
    if ref_samples:
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
