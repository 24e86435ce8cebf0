"""The README's "which sampler to pick" advice and overview, generated from the decided tables.

Every decided table in docs/benchmark.md (``<!-- bench-decided-<model>-<schedule>-<kind>-nfe<N>
[-limit|-path]:start -->``, written by ``bench`` from measured, cached runs: :mod:`.decide`) names
our best entry of the cell and a verdict against each kept anchor (ahead, level or behind,
called only beyond the paired spread). :func:`overview_markdown` reads those sections back and
lays them out as one grid per yardstick (the KID to the data; the distance to the converged
process; to the SDE's solution on the same path), one row per model, schedule and kind, one
column per budget, so the README's advice is a mechanical summary of the tables rather than a
retelling of them. :func:`advice_markdown`
condenses the same cells per situation (guidance or none, kind, yardstick, budget): which of our
entries is best in how many cells, and how often it is at or ahead of every kept anchor. It never
measures anything: a cell exists only where a table does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..samplers.cfg_pp import menu_entries
from .decide import (ANOTHER_SDE, BELOW_CONVERGED, BELOW_OWN_CONVERGED, LEVEL, OUR_BEST, OURS_AHEAD, OURS_BEHIND,
                     ROOM, converged_process)
from .models import DEFAULT_SCHEDULE, GUIDED
from .report import replace_section_if_present

__all__ = ["Cell", "parse_decided", "overview_markdown", "advice_markdown", "advice_section", "SECTION",
           "ADVICE_SECTION"]

SECTION = "decided-overview"  # the README's marked sections
ADVICE_SECTION = "decided-advice"
# the section names of :func:`.decide.section_name`
_START = re.compile(r"<!-- bench-decided-(?P<model>[a-z]+-[a-z0-9]+)-(?P<schedule>[a-z_]+)-"
                    r"(?P<kind>stochastic|deterministic)-nfe(?P<nfe>\d+)(?:-(?P<yardstick>limit|path))?:start -->")
# the seeds a decided table ran, as its command line states them (bench/decide.py)
_SEEDS = re.compile(r"samples per seed, seeds (?P<seeds>\d+(?:, \d+)*)[;)]")
# a table's room line: how many of its kept anchors the exact solve of its process is ahead of
_ROOM = re.compile(r"^- \*\*room\*\* .*?" + re.escape(ROOM) + r" (?P<ahead>\d+) of (?P<of>\d+) kept anchors", re.M)
_GENERATED = ("Generated from the decided tables by `python -m seeds_samplers docs --readme README.md` "
              "(and by every `bench` run that writes them).")
# each yardstick: (key, short name, what the overview's grid says of it)
_YARDSTICKS = (("data", "KID to the data", "to the data (KID × 10³ to held-out images; per requested digit under CFG)"),
               ("limit", "to the converged process",
                "to the converged process (`--yardstick limit`: RMS to the ODE limit from the same latent, x(0) on "
                "flow models; KID to samples of the SDE, per requested digit under CFG)"),
               ("path", "to the SDE path",
                "to the SDE's solution on the same Brownian path (`--yardstick path`: per-sample RMS, stochastic "
                "samplers)"))


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
    other: List[str] = field(default_factory=list)  # a path table's anchors of another SDE: no verdict
    # the anchors ahead of ours that lie below the converged process themselves (a table scored
    # by the data: nearer the data through their error; bench/decide.py)
    below: List[str] = field(default_factory=list)
    own: List[str] = field(default_factory=list)  # of those, the anchors of another SDE (below their own)
    seeds: Optional[int] = None  # the seeds the table pairs over (its command line), when it says
    # of the kept anchors of the table's converged process, how many its exact solve is ahead
    # of, and of how many (a table scored by the data that states it; bench/decide.py)
    room: Optional[Tuple[int, int]] = None

    @property
    def exact_ahead_of_all(self) -> bool:
        """Whether the exact solve of the process is ahead of every kept anchor of it."""
        return self.room is not None and self.room[0] == self.room[1]

    @property
    def ahead_of_all(self) -> bool:
        """Ahead of every anchor with a verdict (and of at least one)."""
        return bool(self.ahead) and not self.behind and not self.level

    @property
    def at_or_ahead(self) -> bool:
        """At or ahead of every anchor with a verdict (and compared with at least one)."""
        return bool(self.ahead or self.level) and not self.behind

    @property
    def behind_only_below(self) -> bool:
        """Behind only anchors that lie below the converged process (and behind at least one)."""
        return bool(self.behind) and all(a in self.below for a, _ in self.behind)

    def text(self) -> str:
        """``best: verdicts``, naming every anchor we are not ahead of."""
        n = len(self.ahead) + len(self.level) + len(self.behind)
        parts = []
        if self.behind:
            process = converged_process(self.kind)
            parts.append("**behind** " + ", ".join(
                f"{a} ({d}" + (f"; the anchor below {'its own' if a in self.own else 'the'} converged {process}"
                               if a in self.below else "") + ")"
                for a, d in self.behind))
        if self.level:
            parts.append("level with " + ", ".join(self.level))
        if self.ahead:
            parts.append(f"ahead of {'all ' if len(self.ahead) == n else ''}{len(self.ahead)}"
                         + ("" if len(self.ahead) == n else f" of {n}"))
        if self.other:
            parts.append("another SDE: " + ", ".join(self.other))
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
        body = text[m.end():end]
        seeds = _SEEDS.search(body)
        room = _ROOM.search(body)
        cell = Cell(m.group("model"), m.group("schedule"), m.group("kind"), int(m.group("nfe")),
                    m.group("yardstick") or "data", seeds=len(seeds.group("seeds").split(",")) if seeds else None,
                    room=(int(room.group("ahead")), int(room.group("of"))) if room else None)
        for row in _rows(body):
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
            elif verdict == OURS_BEHIND or verdict.startswith(OURS_BEHIND + ";"):
                cell.behind.append((name, diff))
                if BELOW_CONVERGED in verdict or BELOW_OWN_CONVERGED in verdict:
                    cell.below.append(name)
                if BELOW_OWN_CONVERGED in verdict:
                    cell.own.append(name)
            elif verdict == LEVEL:
                cell.level.append(name)
            elif verdict == ANOTHER_SDE:
                cell.other.append(name)
        if not cell.best:
            raise ValueError(f"decided section {m.group(0)} names no best entry of ours")
        cells.append(cell)
    return cells


def _latest(cells: Sequence[Cell]) -> List[Cell]:
    """One cell per model, schedule, kind, budget and yardstick: a later table of a cell wins."""
    return list({(c.model, c.schedule, c.kind, c.nfe, c.yardstick): c for c in cells}.values())


def _usual_seeds(cells: Sequence[Cell]) -> Optional[int]:
    """The seed count most of the tables pair over (the fewer on a tie), None when none says."""
    counts = [c.seeds for c in cells if c.seeds]
    return min(set(counts), key=lambda n: (-counts.count(n), n)) if counts else None


def _seeds_phrase(cells: Sequence[Cell]) -> str:
    """How many seeds the tables pair over: the usual count and, where tables differ, how the
    others are marked."""
    usual = _usual_seeds(cells)
    others = sorted({c.seeds for c in cells if c.seeds and c.seeds != usual})
    if usual is None:
        return "seeds"
    if not others:
        return f"{usual} seeds"
    marks = " or ".join(f"{n} on the cells the overview marks [{n} seeds]" for n in others)
    return f"{usual} seeds ({marks}: more seeds, a smaller minimum detectable difference)"


def _grid(cells: Sequence[Cell], usual: Optional[int] = None) -> List[str]:
    """One row per model, schedule and kind, one column per budget; a cell of other than
    ``usual`` seeds is marked with its count."""
    budgets = sorted({c.nfe for c in cells})
    rows: Dict[Tuple[str, str, str], Dict[int, Cell]] = {}
    for c in _latest(cells):
        rows.setdefault((c.model, c.schedule, c.kind), {})[c.nfe] = c
    out = ["| model | schedule | kind | " + " | ".join(f"{n} calls" for n in budgets) + " |",
           "|---|---|---|" + "---|" * len(budgets)]
    for (model, schedule, kind), by_nfe in sorted(rows.items()):
        out.append(f"| {model} | `{schedule}` | {kind} | "
                   + " | ".join(_marked(by_nfe[n], usual) if n in by_nfe else "–" for n in budgets) + " |")
    return out


def _marked(c: Cell, usual: Optional[int]) -> str:
    """The cell's text, marked with its seed count where it is not the usual one."""
    return c.text() + (f" [{c.seeds} seeds]" if c.seeds and usual and c.seeds != usual else "")


def _guided(model: str) -> bool:
    """Whether the model's samples are made with classifier-free guidance (a scale above 1)."""
    return GUIDED.get(model, 1.0) > 1.0


def _where(c: Cell) -> str:
    """The cell's model, with its schedule where it is not the model's default one."""
    return c.model if DEFAULT_SCHEDULE.get(c.model) == c.schedule else f"{c.model} `{c.schedule}`"


def _advice_cell(cells: Sequence[Cell], menu_id: Dict[str, str]) -> str:
    """Our best entries of the cells, most often best first, and how the best fared."""
    by_entry: Dict[str, List[Cell]] = {}
    for c in cells:
        by_entry.setdefault(c.best, []).append(c)
    n = len(cells)
    ranked = sorted(by_entry.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    names = "; ".join(f"**{best}**" + (f" `{menu_id[best]}`" if best in menu_id else "")
                      + f" {len(won)} of {n} ({', '.join(_where(c) for c in won)})" for best, won in ranked)
    ahead = sum(1 for c in cells if c.ahead_of_all)
    at_or_ahead = sum(1 for c in cells if c.at_or_ahead)
    below = sum(1 for c in cells if c.behind_only_below)
    roomed = [c for c in cells if c.room is not None]
    room = sum(1 for c in roomed if c.exact_ahead_of_all)
    return (f"{names}; of the {n} cell{'s' if n > 1 else ''}: ahead of every kept anchor in {ahead}, "
            f"at or ahead of each in {at_or_ahead}"
            + (f", behind only anchors below the converged process in {below}" if below else "")
            + (f"; the exact solve itself ahead of every kept anchor of its process in {room} of the "
               f"{len(roomed)} that measure it" if roomed else ""))


def advice_markdown(cells: Sequence[Cell]) -> str:
    """One row per situation (guidance or none, kind, yardstick), one column per budget: our best
    entries of the decided cells there and how often they lead (module docstring)."""
    menu_id = {spec.title: f"ss_{spec.id}" for spec in menu_entries(cfg_pp=False)}
    scales = sorted({GUIDED[c.model] for c in cells if _guided(c.model)})
    cfg1 = any(GUIDED.get(c.model) == 1.0 for c in cells)  # the conditional model at scale 1: unguided
    regimes = (("no guidance" + (" (CFG 1 included)" if cfg1 else ""), False),
               (f"CFG {' and '.join(f'{s:g}' for s in scales)}", True))
    budgets = sorted({c.nfe for c in cells})
    out = ["| situation | " + " | ".join(f"{n} calls" for n in budgets) + " |",
           "|---|" + "---|" * len(budgets)]
    for regime, guided in regimes:
        for kind in ("deterministic", "stochastic"):
            for key, yard, _ in _YARDSTICKS:
                mine = [c for c in cells if _guided(c.model) == guided and c.kind == kind and c.yardstick == key]
                if not mine:
                    continue
                row = []
                for n in budgets:
                    at = [c for c in mine if c.nfe == n]
                    row.append(_advice_cell(at, menu_id) if at else "–")
                out.append(f"| {regime}, {kind}, {yard} | " + " | ".join(row) + " |")
    return "\n".join(out)


def advice_section(benchmark_md: Path, link: str = "docs/benchmark.md") -> str:
    """The README's advice section: :func:`advice_markdown` of the decided tables with its key."""
    cells = _latest(parse_decided(benchmark_md.read_text()))
    return "\n".join([
        f"Our best entry per situation, over the decided tables of [{link}]({link}) (each named with the "
        "models it is best on; \"ahead\" and \"at or ahead\" counted against every kept anchor of a "
        f"cell, paired over {_seeds_phrase(cells)}, beyond the paired spread; on the SDE-path tables an anchor of "
        "another SDE "
        "gets no verdict; \"behind only anchors below the converged process\": on a table scored by the data, "
        "every anchor ahead of ours there scores below the exact solve of the process it discretises, so it "
        "is nearer the data through its error; \"the exact solve itself ahead\": on a table scored by the data, "
        "the converged process our entries discretise is ahead of every kept anchor of that process beyond the "
        "paired spread, the cells where an entry can be shown ahead of them by its accuracy (the tables' room "
        "lines)):", "", advice_markdown(cells), "", _GENERATED])


def overview_markdown(benchmark_md: Path, link: str = "docs/benchmark.md") -> str:
    """The overview grids of the decided tables in ``benchmark_md`` (module docstring)."""
    cells = parse_decided(benchmark_md.read_text())
    latest = _latest(cells)
    usual = _usual_seeds(latest)  # a grid marks the cells of another seed count
    out: List[str] = [f"Our best menu entry per decided table of [{link}]({link}) and its verdict against "
                      f"each kept anchor (paired over {_seeds_phrase(latest)}, called only beyond the "
                      "paired spread; "
                      "in parentheses: our best minus the anchor, positive = ours behind, and where the anchor "
                      "itself scores below the converged process (its own, for an anchor of another SDE) beyond "
                      "the paired spread, that: it is nearer the "
                      "data through its error):"]
    for key, _, title in _YARDSTICKS:
        mine = [c for c in cells if c.yardstick == key]
        if mine:
            out += ["", f"Distance {title}:", ""] + _grid(mine, usual)
    out += ["", _GENERATED]
    return "\n".join(out)


def update_readme(readme: Path, benchmark_md: Optional[Path] = None) -> bool:
    """Rewrite the README's advice and overview sections from the decided tables beside it;
    False when the README has neither section or there is no benchmark page."""
    page = benchmark_md or readme.parent / "docs" / "benchmark.md"
    if not page.is_file():
        return False
    advice = replace_section_if_present(readme, ADVICE_SECTION, advice_section(page))
    return replace_section_if_present(readme, SECTION, overview_markdown(page)) or advice
