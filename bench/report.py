"""Markdown tables, plots and image grids written by the demo and the benchmarks."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

__all__ = ["pivot_markdown", "plot_metric", "image_grid", "replace_section"]


def _fmt(v: Optional[float], digits: int = 4) -> str:
    if v is None:
        return "–"
    if not math.isfinite(v):
        return "diverged"
    return f"{v:.{digits}f}" if v >= 10 ** -(digits - 1) else f"{v:.2e}"


def pivot_markdown(rows: Sequence[dict], metric: str, budgets: Sequence[int], digits: int = 4,
                   only_deterministic: bool = False) -> str:
    """Solvers as rows, NFE budgets as columns, best value per column in bold."""
    labels: List[str] = []
    table: Dict[tuple, dict] = {}
    for r in rows:
        if only_deterministic and r.get("stochastic"):
            continue
        if r.get(metric) is None:
            continue
        key = (r["label"], r["source"])
        if key not in labels:
            labels.append(key)
        table[key + (r["nfe"],)] = r
    best = {}
    for b in budgets:
        vals = [table[k + (b,)][metric] for k in labels if k + (b,) in table]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        best[b] = min(vals) if vals else None
    head = "| solver | source | " + " | ".join(f"NFE {b}" for b in budgets) + " |"
    sep = "|---|---|" + "---:|" * len(budgets)
    lines = [head, sep]
    for k in labels:
        cells = []
        for b in budgets:
            r = table.get(k + (b,))
            if r is None:
                cells.append("–")
                continue
            text = _fmt(r[metric], digits)
            if r["calls"] != b:
                text += f" ({r['calls']})"
            cells.append(f"**{text}**" if r[metric] == best[b] else text)
        lines.append(f"| {k[0]} | {k[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_metric(rows: Sequence[dict], metric: str, path: Path, title: str, floor: Optional[float] = None,
                only_deterministic: bool = False) -> None:
    """Log-log plot of ``metric`` against the measured number of model calls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    series: Dict[tuple, list] = {}
    for r in rows:
        if (only_deterministic and r.get("stochastic")) or r.get(metric) is None or not math.isfinite(r[metric]):
            continue
        series.setdefault((r["label"], r["source"]), []).append((r["calls"], r[metric]))
    for (label, source), pts in series.items():
        pts.sort()
        style = "-" if source == "ours" else "--"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=f"{label}" + ("" if source == "ours" else " (k-diff)"))
    if floor is not None:
        ax.axhline(floor, color="gray", lw=0.8, ls=":", label="exact samples (noise floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model calls (NFE)")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def image_grid(rows: Sequence[tuple], path: Path, per_row: int = 8) -> None:
    """Save a grid: one row per (label, samples C x H x W in [-1, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(1.7 + 0.62 * per_row, 0.66 * len(rows)), dpi=110)
    axes = [axes] if len(rows) == 1 else list(axes)
    for ax, (label, x) in zip(axes, rows):
        x = x[:per_row].to(torch.float64).clamp(-1, 1).add(1).div(2)
        strip = torch.cat(list(x.permute(0, 2, 3, 1)), dim=1).numpy()
        if strip.shape[-1] == 1:  # single-channel (digits): grey levels, not a colour map
            ax.imshow(strip[..., 0], interpolation="nearest", cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(strip, interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=1.6 / (1.7 + 0.62 * per_row), right=0.99, top=0.99, bottom=0.01, hspace=0.08)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def replace_section(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {name} section markers")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda m: f"{start}\n{body.strip()}\n{end}", text))


def fmt_settings(settings: Mapping[str, Any]) -> str:
    """Sampler settings as markdown, in their order: "`name=value`, ..." ("" for none)."""
    return ", ".join(f"`{k}={v}`" for k, v in settings.items())


def fmt_mean_sd(mean: Optional[float], sd: Optional[float], digits: int = 3) -> str:
    """``mean ± sd``: the mean to ``digits`` significant digits, the spread to the same
    decimals (or one significant digit when it is smaller); scientific below 1e-3."""
    if mean is None:
        return "–"
    if not math.isfinite(mean):
        return "diverged"
    sd = sd or 0.0
    if mean != 0 and abs(mean) < 1e-3:
        return f"{mean:.2e} ± {sd:.1e}"
    dec = max(0, digits - 1 - (math.floor(math.log10(abs(mean))) if mean else 0))
    if sd == 0 or round(sd, dec) > 0:
        return f"{mean:.{dec}f} ± {sd:.{dec}f}"
    return f"{mean:.{dec}f} ± {sd:.1g}"


def pivot_mean_sd(cells: Sequence[dict], budgets: Sequence[int], key: str = "mean", digits: int = 3,
                  only_deterministic: bool = False) -> str:
    """Contenders as rows, NFE budgets as columns, ``mean ± sd`` cells (``key``: ``"mean"``
    for the distance, ``"ref_mean"`` for the ODE error); best mean per column in bold."""
    sd_key = "sd" if key == "mean" else "ref_sd"
    labels: List[tuple] = []
    table: Dict[tuple, dict] = {}
    for c in cells:
        if (only_deterministic and c["stochastic"]) or c.get(key) is None:
            continue
        k = (c["label"], c["source"])
        if k not in labels:
            labels.append(k)
        table[k + (c["nfe"],)] = c
    best = {}
    for b in budgets:
        vals = [table[k + (b,)][key] for k in labels if k + (b,) in table]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        best[b] = min(vals) if vals else None
    lines = ["| solver | source | " + " | ".join(f"NFE {b}" for b in budgets) + " |",
             "|---|---|" + "---:|" * len(budgets)]
    for k in labels:
        cells_txt = []
        for b in budgets:
            c = table.get(k + (b,))
            if c is None:
                cells_txt.append("–")
                continue
            text = fmt_mean_sd(c[key], c[sd_key], digits)
            if c["calls"] != b:
                text += f" ({c['calls']})"
            cells_txt.append(f"**{text}**" if c[key] == best[b] else text)
        lines.append(f"| {k[0]} | {k[1]} | " + " | ".join(cells_txt) + " |")
    return "\n".join(lines)


def plot_mean_sd(cells: Sequence[dict], path: Path, title: str, ylabel: str, key: str = "mean",
                 floor: Optional[tuple] = None, only_deterministic: bool = False, logy: bool = True) -> None:
    """Mean (line) ± spread (error bars) against the measured model calls, one line per
    contender; ours solid, k-diffusion dashed, ComfyUI dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sd_key = "sd" if key == "mean" else "ref_sd"
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    series: Dict[tuple, list] = {}
    for c in cells:
        if (only_deterministic and c["stochastic"]) or c.get(key) is None or not math.isfinite(c[key]):
            continue
        series.setdefault((c["label"], c["source"]), []).append((c["calls"], c[key], c[sd_key] or 0.0))
    styles = {"ours": "-", "k-diffusion": "--", "ComfyUI": ":"}
    for (label, source), pts in series.items():
        pts.sort()
        suffix = "" if source == "ours" else f" ({'k-diff' if source == 'k-diffusion' else source})"
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], ls=styles.get(source, "-"),
                    marker="o", ms=3, capsize=2, lw=1.2 if source == "ours" else 0.9, label=label + suffix)
    if floor is not None and floor[0] is not None:
        ax.axhline(floor[0], color="gray", lw=0.8, ls=":", label="real / exact samples (floor)")
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("model calls (NFE)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def replace_section_if_present(path: Path, name: str, body: str) -> bool:
    """:func:`replace_section` when ``path`` has the section's markers; False (and nothing
    written) when it has not, e.g. a README restructured without that section."""
    text = path.read_text() if path.is_file() else ""
    if f"<!-- {name}:start -->" not in text or f"<!-- {name}:end -->" not in text:
        print(f"note: {path} has no <!-- {name}:start/end --> markers; its {name} section was not updated")
        return False
    replace_section(path, name, body)
    return True


def update_section(path: Path, name: str, body: str, header: str = "") -> None:
    """Like :func:`replace_section`, but creates the file (starting with ``header``) or
    appends the marked section when it is missing."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.is_file() else header
    if start not in text or end not in text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.rstrip("\n") + f"\n\n{start}\n{end}\n")
    replace_section(path, name, body)
