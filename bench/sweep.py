"""``bench --sweep SAMPLER --set name=v1,v2 ...``: every combination of the given parameter
values (others at the menu entry's settings) on the test models, mean ± spread per model x NFE
and an aggregate rank."""

from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..samplers import registry
from .compare import Contender, ours
from .contenders import anchor_contenders
from .decide import (KID_RESOLUTION, TRAINED, above_between_steps, called, check_yardstick, kid_model, mdd, measure,
                     same_process, scored_model, summarise_measured)
from .limits import Yardstick
from .grid import mean_sd, run_grid, summarise
from .models import TestModel, build_model
from .report import fmt_mean_sd, pivot_mean_sd


def _parse_value(p: registry.Param, text: str) -> Any:
    """A ``--set`` value as the menus read it: Param.check takes numbers and true/false as text."""
    return p.check(text.strip())


def is_menu_configuration(spec: registry.SamplerSpec, params: Dict[str, Any]) -> bool:
    """Whether a sweep's configuration runs the menu entry's settings, compared as resolved
    settings: a swept parameter at its default (absent from the entry's settings) is the entry's."""
    return spec.resolve(**params) == spec.menu_settings()


def sweep_grid(sampler: str, sets: Sequence[str]) -> List[Dict[str, Any]]:
    """Every combination of ``name=v1,v2,...`` values over the sampler's menu entry settings."""
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
        params = {**spec.menu, **dict(combo)}
        spec.resolve(**params)  # validates the combination
        combos.append(params)
    return combos


def sweep_label(sampler: str, params: Dict[str, Any], varied: Sequence[str]) -> str:
    spec = registry.get(sampler)
    shown = ", ".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in varied)
    return f"{spec.title} [{shown}]" if shown else f"{spec.title} [menu entry]"


def rank_table(cells: Sequence[dict]) -> List[tuple]:
    """(label, source, mean rank, geometric-mean ratio to the best, cells) over every
    (model, schedule, NFE) cell; lower is better. The ratio skips a cell whose best value is
    not positive (a KID to a limit can be at or below 0, where no ratio means anything; nan
    when no cell is left); a diverged row counts 1000 times the best."""
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
        if best <= 0:
            continue
        for c in group:
            key = (c["label"], c["source"])
            ok = c["mean"] is not None and math.isfinite(c["mean"])
            ratios.setdefault(key, []).append(math.log(c["mean"] / best) if ok else math.log(1e3))

    def ratio(key) -> float:
        logs = ratios.get(key)
        return math.exp(sum(logs) / len(logs)) if logs else math.nan

    out = [(k[0], k[1], sum(v) / len(v), ratio(k), len(v)) for k, v in ranks.items()]
    return sorted(out, key=lambda r: (r[2], r[3]))


def _decided_cells(model: TestModel, contenders: Sequence[Contender], budgets: Sequence[int], seeds: Sequence[int],
                   schedule: str, samples: int, yardstick: Optional[Yardstick] = None) -> List[dict]:
    """Cells of a trained model: KID of every configuration from the same latents and noise
    (the decided tables' paired design and cache, :func:`.decide.measure`), or with
    ``yardstick`` the distance to the converged process (:mod:`.limits`)."""
    cells = []
    for nfe in budgets:
        res, _ = measure(model, contenders, nfe, seeds, schedule, samples, log=lambda s: None, yardstick=yardstick)
        for c, row in zip(contenders, summarise_measured(res, contenders, seeds)):
            if yardstick is not None and yardstick.pathwise:  # each row against its own process's solution
                row["process"] = yardstick.process(c)
            cells.append(dict(row, model=model.name, schedule=schedule, nfe=nfe, stochastic=c.stochastic,
                              n=len(seeds), ref_mean=None, ref_sd=None))
    return cells


def _paired(row: dict, ref: dict, seeds: int) -> Tuple[float, float, bool]:
    """Row minus ``ref`` per seed: (mean, spread, called beyond the paired spread)."""
    d_mean, d_sd = mean_sd([row["values"][s] - ref["values"][s] for s in ref["values"]])
    return d_mean, d_sd, called(d_mean, d_sd, seeds, KID_RESOLUTION)


def _paired_lines(cells: Sequence[dict], budgets: Sequence[int], seeds: int) -> List[str]:
    """Per NFE: the best configuration against the best anchor, as a paired difference over
    seeds with its one-sided 95 % MDD (:func:`.decide.called`). On the path yardstick (cells
    with a "process") only anchors of the best configuration's process: one of another SDE is
    scored against its own solution (:func:`.decide.same_process`)."""
    out = []
    for nfe in budgets:
        cell = [c for c in cells if c["nfe"] == nfe and math.isfinite(c["mean"])]
        mine = [c for c in cell if c["source"] == "ours"]
        if not mine:
            continue
        a = min(mine, key=lambda c: c["mean"])
        others = [c for c in cell if c["source"] != "ours" and same_process(c, a)]
        if not others:
            continue
        b = min(others, key=lambda c: c["mean"])
        d_mean, d_sd, beyond = _paired(a, b, seeds)
        verdict = ("ahead" if d_mean < 0 else "behind") if beyond else "level"
        out.append(f"- NFE {nfe}: best configuration {a['label']} vs best anchor {b['label']} ({b['source']}): "
                   f"{fmt_mean_sd(d_mean, d_sd)} (MDD {mdd([d_sd], seeds):.3g}): {verdict}")
    return out


def _against_menu_lines(cells: Sequence[dict], budgets: Sequence[int], seeds: int,
                        menu_label: Optional[str]) -> List[str]:
    """Per NFE: every other configuration against the one at the menu entry's settings
    (``menu_label``), as a paired difference over seeds (row minus menu, so negative = the
    row nearer) with its verdict beyond the paired spread (:func:`.decide.called`): how a
    setting would change the menu entry, read from the same latents and noise. On the path
    yardstick only configurations of the menu entry's SDE (:func:`.decide.same_process`)."""
    out = []
    for nfe in budgets:
        cell = {c["label"]: c for c in cells if c["nfe"] == nfe and c["source"] == "ours"}
        ref = cell.get(menu_label)
        if ref is None or not math.isfinite(ref["mean"]):
            continue
        parts = []
        for label, c in cell.items():
            # on the path yardstick a configuration of another SDE is scored against its own
            if label == menu_label or not math.isfinite(c["mean"]) or not same_process(c, ref):
                continue
            d_mean, d_sd, beyond = _paired(c, ref, seeds)
            verdict = ("nearer" if d_mean < 0 else "further") if beyond else "level"
            parts.append(f"{label} {fmt_mean_sd(d_mean, d_sd)} ({verdict})")
        if parts:
            out.append(f"- NFE {nfe}, row − {menu_label}: " + "; ".join(parts))
    return out


# a sweep's score on the trained models by (yardstick, stochastic), beside the KID to the data
_LIMIT_METRIC = {("limit", True): "KID x 10^3 to the SDE limit", ("limit", False): "RMS x 10^3 to the ODE limit",
                 ("path", True): "RMS x 10^3 to the SDE path"}


def _between_steps_lines(yard: Yardstick, contenders: Sequence[Contender], cells: Sequence[dict],
                         budgets: Sequence[int], seed: int, samples: int) -> List[str]:
    """Per NFE, on seed ``seed``: what the path between the steps of the first configuration of
    the shared process leaves (:meth:`.limits.Yardstick.between_steps`), and how far each row
    of that process (``cells``, one model and schedule) lies above it on the same seed."""
    c = next((c for c in contenders if c.source == "ours" and yard.process(c) == "sde"), None)
    if c is None:
        return []
    out = []
    for nfe in budgets:
        floor, rows = above_between_steps(yard, c, [r for r in cells if r["nfe"] == nfe], seed, samples, nfe)
        above = "; ".join(f"{r['label']} ({r['source']}) {d:+.3g}" for r, d in rows)
        out.append(f"- NFE {nfe}, seed {seed}: the shared SDE solved on the paths known only at the "
                   f"{c.intervals_for(nfe) + 1} sigmas of {c.label}: {floor:.3g} from the path solution; "
                   f"the rows of that SDE on this seed, above it: {above}")
    return out


def sweep(sampler: str, sets: Sequence[str], models: Sequence[str], schedules: Optional[Sequence[str]],
          budgets: Sequence[int], seeds: Sequence[int], samples: int, digits_samples: int,
          anchors: Optional[Sequence[str]],
          comfy: bool, log=print, yardstick: str = "data", between_steps: bool = False) -> tuple:
    """The sweep's markdown and cells. ``yardstick``: on the trained models, ``"data"`` (KID to
    the held-out images), ``"limit"`` (the distance to the converged process of the same
    model, :mod:`.limits`: per-sample RMS to the ODE limit, or KID to the SDE's law) or, for a
    stochastic sampler, ``"path"`` (per-sample RMS to its SDE's solution on the same path).
    ``between_steps`` (path only): also what the path between a configuration's own sigmas
    leaves, on the first seed (:func:`_between_steps_lines`)."""
    check_yardstick(yardstick)
    if between_steps and yardstick != "path":
        raise ValueError("--between-steps goes with --yardstick path")
    combos = sweep_grid(sampler, sets)
    varied = [s.split("=", 1)[0].strip() for s in sets]
    spec = registry.get(sampler)
    contenders = [ours(spec.id, sweep_label(sampler, p, varied), **p) for p in combos]
    # the configuration at the menu entry's own settings, if the grid holds it: the others'
    # paired differences are read against it
    menu_label = next((c.label for c, p in zip(contenders, combos) if is_menu_configuration(spec, p)), None)
    stochastic = any(spec.is_stochastic(**p) for p in combos)
    if anchors is not None:  # [] = every anchor of the swept configurations' kind, else those named
        pool = [c for c in anchor_contenders(comfy) if c.stochastic == stochastic]
        unknown = set(anchors) - {c.label for c in pool}
        if unknown:
            raise ValueError(f"unknown anchors {sorted(unknown)}; of this kind: {sorted(c.label for c in pool)}")
        contenders += [c for c in pool if not anchors or c.label in anchors]
    all_cells, notes = [], {}
    for name in models:
        model = kid_model(name) if name in TRAINED else build_model(name)
        for schedule in (schedules or [model.default_schedule]):
            n = digits_samples if name in TRAINED else samples
            log(f"[sweep {sampler}] {name} / {schedule}: {len(contenders)} configurations x {len(seeds)} seeds, {n} samples")
            if name in TRAINED:
                scored, yard = scored_model(model, "stochastic" if stochastic else "deterministic", schedule,
                                            yardstick)
                cells = _decided_cells(scored, contenders, budgets, seeds, schedule, n, yard)
                all_cells += cells
                if between_steps:
                    notes[(name, schedule)] = _between_steps_lines(yard, contenders, cells, budgets, seeds[0], n)
            else:
                all_cells += summarise(run_grid(model, contenders, budgets, seeds, schedule, n, 0, log=lambda s: None))
    lines = []
    for name in models:
        for schedule in sorted({c["schedule"] for c in all_cells if c["model"] == name}):
            sel = [c for c in all_cells if c["model"] == name and c["schedule"] == schedule]
            metric = "W2"
            if name in TRAINED:
                metric = "KID x 10^3 (paired, cached; bench/decide.py)" if yardstick == "data" else \
                    f"{_LIMIT_METRIC[(yardstick, stochastic)]} (paired, cached; bench/limits.py)"
            lines += [f"#### {name}, schedule `{schedule}`: {metric}", "", pivot_mean_sd(sel, budgets), ""]
            if name in TRAINED and len(combos) > 1:
                lines += _against_menu_lines(sel, budgets, len(seeds), menu_label) + [""]
            if name in TRAINED and anchors is not None:
                lines += _paired_lines(sel, budgets, len(seeds)) + [""]
            if notes.get((name, schedule)):
                lines += notes[(name, schedule)] + [""]
    ranked = rank_table(all_cells)
    lines += ["#### Aggregate rank (mean rank over every model x NFE cell; ratio = geometric mean of "
              "distance / best distance in the cell)", "", "| configuration | source | mean rank | ratio to best | cells |",
              "|---|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.2f} | {'–' if math.isnan(r[3]) else f'{r[3]:.3f}'} | {r[4]} |"
              for r in ranked]
    return "\n".join(lines), all_cells
