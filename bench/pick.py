"""The README's "which sampler to pick" overview, generated from the decided tables.

Every decided table in docs/benchmark.md (``<!-- bench-decided-<model>-<schedule>-<kind>-nfe<N>
[-limit]:start -->``, written by ``bench`` from measured, cached runs: :mod:`.decide`) names
our best entry of the cell and a verdict against each kept anchor (ahead, level or behind,
called only beyond the paired spread). :func:`overview_markdown` reads those sections back and
lays them out as one grid per yardstick (the KID to the data; the distance to the converged
process), one row per model, schedule and kind, one column per budget, so the README's advice
is a mechanical summary of the tables rather than a retelling of them. It never measures
anything: a cell exists only where a table does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .decide import LEVEL, OUR_BEST, OURS_AHEAD, OURS_BEHIND
from .report import replace_section_if_present

__all__ = ["Cell", "parse_decided", "overview_markdown", "SECTION"]

SECTION = "decided-overview"  # the README's marked section
# the section names of :func:`.decide.section_name`
_START = re.compile(r"<!-- bench-decided-(?P<model>[a-z]+-[a-z0-9]+)-(?P<schedule>[a-z_]+)-"
                    r"(?P<kind>stochastic|deterministic)-nfe(?P<nfe>\d+)(?P<limit>-limit)?:start -->")
_YARDSTICKS = (("data", "to the data (KID × 10³ to held-out images; per requested digit under CFG)"),
               ("limit", "to the converged process (`--yardstick limit`: RMS to the ODE limit from the same "
                         "latent, x(0) on flow models; KID to samples of the SDE, per requested digit under CFG)"))


@dataclass
class Cell:
    """One decided table: our best entry and its verdict against each kept anchor."""

    model: str
    schedule: str
    kind: str
    nfe: int
    yardstick: str
    best: str = ""
    ahead: List[str] = field(default_factory=list)
    level: List[str] = field(default_factory=list)
    behind: List[Tuple[str, str]] = field(default_factory=list)  # (anchor, paired difference)

    def text(self) -> str:
        """``best: verdicts``, naming every anchor we are not ahead of."""
        n = len(self.ahead) + len(self.level) + len(self.behind)
        parts = []
        if self.behind:
            parts.append("**behind** " + ", ".join(f"{a} ({d})" for a, d in self.behind))
        if self.level:
            parts.append("level with " + ", ".join(self.level))
        if self.ahead:
            parts.append(f"ahead of {'all ' if len(self.ahead) == n else ''}{len(self.ahead)}"
                         + ("" if len(self.ahead) == n else f" of {n}"))
        return f"{self.best}: " + "; ".join(parts) if parts else self.best


def _rows(body: str) -> List[List[str]]:
    """The cells of the section's markdown table rows (header and rule skipped)."""
    out = []
    for line in body.splitlines():
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| solver |"):
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def parse_decided(text: str) -> List[Cell]:
    """Every decided table of a docs/benchmark.md text, in page order.

    A table row is ``| solver | source | calls | value | paired difference | verdict | ...``;
    our best is the row whose verdict is "our best", the anchors the rows whose source is not
    "ours".
    """
    cells = []
    for m in _START.finditer(text):
        end = text.find(m.group(0).replace(":start", ":end"), m.end())
        if end < 0:
            raise ValueError(f"decided section {m.group(0)} has no end marker")
        cell = Cell(m.group("model"), m.group("schedule"), m.group("kind"), int(m.group("nfe")),
                    "limit" if m.group("limit") else "data")
        for row in _rows(text[m.end():end]):
            if len(row) < 6:
                continue
            solver, source, _calls, _value, diff, verdict = row[:6]
            name = solver if source == "ours" else f"`{solver}` ({source})"
            if verdict == OUR_BEST:
                cell.best = solver
            elif source == "ours":
                continue
            elif verdict == OURS_AHEAD:
                cell.ahead.append(name)
            elif verdict == OURS_BEHIND:
                cell.behind.append((name, diff))
            elif verdict == LEVEL:
                cell.level.append(name)
        if not cell.best:
            raise ValueError(f"decided section {m.group(0)} names no best entry of ours")
        cells.append(cell)
    return cells


def _grid(cells: Sequence[Cell]) -> List[str]:
    budgets = sorted({c.nfe for c in cells})
    rows: Dict[Tuple[str, str, str], Dict[int, Cell]] = {}
    for c in cells:
        rows.setdefault((c.model, c.schedule, c.kind), {})[c.nfe] = c  # a later table of a cell wins
    out = ["| model | schedule | kind | " + " | ".join(f"{n} calls" for n in budgets) + " |",
           "|---|---|---|" + "---|" * len(budgets)]
    for (model, schedule, kind), by_nfe in sorted(rows.items()):
        out.append(f"| {model} | `{schedule}` | {kind} | "
                   + " | ".join(by_nfe[n].text() if n in by_nfe else "–" for n in budgets) + " |")
    return out


def overview_markdown(benchmark_md: Path, link: str = "docs/benchmark.md") -> str:
    """The overview grids of the decided tables in ``benchmark_md`` (module docstring)."""
    cells = parse_decided(benchmark_md.read_text())
    out: List[str] = [f"Our best menu entry per decided table of [{link}]({link}) and its verdict against "
                      "each kept anchor (paired over 3 seeds, called only beyond the paired spread; "
                      "in parentheses: our best minus the anchor, positive = ours behind):"]
    for key, title in _YARDSTICKS:
        mine = [c for c in cells if c.yardstick == key]
        if mine:
            out += ["", f"Distance {title}:", ""] + _grid(mine)
    out += ["", "Generated from the decided tables by `python -m seeds_samplers docs --readme README.md` "
                "(and by every `bench` run that writes them)."]
    return "\n".join(out)


def update_readme(readme: Path, benchmark_md: Optional[Path] = None) -> bool:
    """Rewrite the README's overview section from the decided tables beside it; False when the
    README has no such section or there is no benchmark page."""
    page = benchmark_md or readme.parent / "docs" / "benchmark.md"
    if not page.is_file():
        return False
    return replace_section_if_present(readme, SECTION, overview_markdown(page))
