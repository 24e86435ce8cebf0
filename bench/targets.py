"""Verdicts on summarised benchmark cells: the issue targets (our best entry against the
anchors at given budgets, paired over seeds) and the places where ours lose."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

from .grid import mean_sd
from .report import fmt_mean_sd


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
    """Issue targets: at 10 and 20 calls our best stochastic menu entry vs every
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
