"""The README's overview of the decided tables (bench/pick.py): read back from the tables'
own rows, and kept in step with docs/benchmark.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seeds_samplers.bench.pick import ADVICE_SECTION, SECTION, Cell, advice_markdown, advice_section, \
    overview_markdown, parse_decided

ROOT = Path(__file__).resolve().parents[1]

_TABLE = """<!-- bench-decided-digits-cfg3-sgm_uniform-deterministic-nfe5-limit:start -->
### digits-cfg3: something, `sgm_uniform`, NFE 5, deterministic samplers

- **floor**: 8.00 ± 1.24

| solver | source | calls | RMS (mean ± spread) | paired Δ = iPNDM 2M − row | verdict | accuracy (mean ± spread) |
|---|---|---:|---:|---:|---|---:|
| deis | ComfyUI | 5 | 90 ± 2 | 1.5 ± 0.5 | ours behind | 0.997 ± 0.001 |
| iPNDM 2M | ours | 5 | 91 ± 2 | – | our best | 0.996 ± 0.002 |
| lms | k-diffusion | 5 | 92 ± 2 | -0.9 ± 1.8 | level | 1.00 ± 0.00 |
| DEIS | ours | 5 | 230 ± 3 | -101 ± 1 | behind our best | 0.960 ± 0.002 |
| euler | k-diffusion | 5 | 132 ± 2 | -41 ± 2.33 | ours ahead | 1.00 ± 0.00 |

Screening: ...
<!-- bench-decided-digits-cfg3-sgm_uniform-deterministic-nfe5-limit:end -->

<!-- bench-decided-patches-flow-simple-stochastic-nfe20:start -->
| solver | source | calls | KID | paired Δ = SEEDS-2 − row | verdict |
|---|---|---:|---:|---:|---|
| SEEDS-2 | ours | 20 | 1 ± 1 | – | our best |
| sa_solver | ComfyUI | 20 | 3 ± 1 | -2 ± 0.1 | ours ahead |
<!-- bench-decided-patches-flow-simple-stochastic-nfe20:end -->
"""


def test_cells_are_read_from_the_tables_rows():
    guided, flow = parse_decided(_TABLE)
    assert (guided.model, guided.schedule, guided.kind, guided.nfe, guided.yardstick) == \
        ("digits-cfg3", "sgm_uniform", "deterministic", 5, "limit")
    assert guided.best == "iPNDM 2M"
    assert guided.behind == [("`deis` (ComfyUI)", "1.5 ± 0.5")]
    assert guided.level == ["`lms` (k-diffusion)"]
    assert guided.ahead == ["`euler` (k-diffusion)"]  # our other entries are not anchors
    assert guided.text() == ("iPNDM 2M: **behind** `deis` (ComfyUI) (1.5 ± 0.5); level with `lms` (k-diffusion); "
                             "ahead of 1 of 3")
    assert (flow.model, flow.yardstick, flow.best, flow.text()) == ("patches-flow", "data", "SEEDS-2",
                                                                     "SEEDS-2: ahead of all 1")


_PATH_TABLE = """<!-- bench-decided-patches-eps-karras-stochastic-nfe10-path:start -->
| solver | source | calls | RMS | paired Δ = ER-SDE-Solver − row | verdict |
|---|---|---:|---:|---:|---|
| er_sde | ComfyUI | 10 | 48 ± 1 | 41 ± 3 | another SDE |
| ER-SDE-Solver | ours | 10 | 90 ± 3 | – | our best |
| dpmpp_2m_sde | k-diffusion | 10 | 93 ± 4 | -3.4 ± 1.0 | ours ahead |
<!-- bench-decided-patches-eps-karras-stochastic-nfe10-path:end -->
"""


def test_an_anchor_of_another_sde_is_named_but_not_counted():
    (cell,) = parse_decided(_PATH_TABLE)
    assert (cell.yardstick, cell.ahead, cell.behind, cell.other) == \
        ("path", ["`dpmpp_2m_sde` (k-diffusion)"], [], ["`er_sde` (ComfyUI)"])
    assert cell.text() == "ER-SDE-Solver: ahead of all 1; another SDE: `er_sde` (ComfyUI)"
    assert cell.ahead_of_all and cell.at_or_ahead
    # a cell whose only anchors are of another SDE compares nothing: neither ahead nor at or ahead
    alone = _cell("patches-eps", "stochastic", 10, "ER-SDE-Solver", yardstick="path")
    alone.other = ["`er_sde` (ComfyUI)"]
    assert not alone.ahead_of_all and not alone.at_or_ahead
    row = advice_markdown([cell, alone]).splitlines()[-1]
    assert row.endswith("of the 2 cells: ahead of every kept anchor in 1, at or ahead of each in 1 |")


def test_a_table_without_our_best_or_its_end_is_refused():
    with pytest.raises(ValueError, match="no best entry"):
        parse_decided(_TABLE.replace("our best", "level"))
    with pytest.raises(ValueError, match="no end marker"):
        parse_decided(_TABLE.split("<!-- bench-decided-digits-cfg3-sgm_uniform-deterministic-nfe5-limit:end")[0])


def test_overview_puts_each_yardstick_in_its_own_grid(tmp_path):
    page = tmp_path / "benchmark.md"
    page.write_text(_TABLE)
    text = overview_markdown(page)
    data, limit = text.split("Distance to the converged process")
    assert "| patches-flow | `simple` | stochastic | SEEDS-2: ahead of all 1 |" in data
    assert "| digits-cfg3 | `sgm_uniform` | deterministic | iPNDM 2M: **behind**" in limit
    assert "digits-cfg3" not in data


def test_a_table_of_more_seeds_is_marked_and_the_intro_says_so(tmp_path):
    """The seed count is read from each table's command line; the overview marks a table of
    other than the usual count, and both texts name the counts."""
    three = "Command: `x` (500 samples per seed, seeds 0, 1, 2; screening: 400 samples of seed 0).\n"
    five = "Command: `y` (2000 samples per seed, seeds 0, 1, 2, 3, 4; screening: 400 samples of seed 0).\n"
    limit_end = "<!-- bench-decided-digits-cfg3-sgm_uniform-deterministic-nfe5-limit:start -->\n"
    flow_start = "<!-- bench-decided-patches-flow-simple-stochastic-nfe20:start -->\n"
    extra = _TABLE.replace("sgm_uniform", "karras")  # a second three-seed table
    page = tmp_path / "benchmark.md"
    page.write_text((_TABLE + extra).replace(limit_end, limit_end + three).replace(flow_start, flow_start + five))
    cells = parse_decided(page.read_text())
    assert [c.seeds for c in cells] == [3, 5, None, 5]
    text = overview_markdown(page)
    assert "paired over 3 seeds (5 on the cells the overview marks [5 seeds]" in text
    assert "SEEDS-2: ahead of all 1 [5 seeds]" in text and "of 3 [3 seeds]" not in text
    assert "paired over 3 seeds (5 on" in advice_section(page)
    page.write_text(_TABLE.replace(limit_end, limit_end + three))  # one count: no marks
    assert "paired over 3 seeds, called" in overview_markdown(page) and "seeds]" not in overview_markdown(page)


def _cell(model, kind, nfe, best, yardstick="limit", schedule="karras", ahead=(), level=(), behind=()):
    return Cell(model, schedule, kind, nfe, yardstick, best, list(ahead), list(level), list(behind))


def test_advice_counts_our_best_entries_and_their_verdicts_per_situation():
    cells = [_cell("digits-eps", "deterministic", 5, "DEIS", ahead=["a", "b"]),
             _cell("patches-eps", "deterministic", 5, "DEIS", level=["a"]),
             _cell("patches-flow", "deterministic", 5, "iPNDM 2M", schedule="simple", behind=[("a", "1 ± 0.1")]),
             _cell("digits-cfg1", "deterministic", 8, "iPNDM", ahead=["a"]),
             _cell("digits-cfg6", "deterministic", 5, "iPNDM 2M", ahead=["a"]),
             _cell("digits-cfg3", "deterministic", 5, "iPNDM 2M", schedule="normal", behind=[("b", "2 ± 1")])]
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in advice_markdown(cells).splitlines()[2:]}
    unguided = rows["| no guidance (CFG 1 included), deterministic, to the converged process"]
    guided = rows["| CFG 3 and 6, deterministic, to the converged process"]
    # the most frequent best first, its menu id, the models it is best on; verdicts over the cells
    assert unguided[0] == ("**DEIS** `ss_deis` 2 of 3 (digits-eps, patches-eps); **iPNDM 2M** `ss_ipndm_2m` 1 of 3 "
                           "(patches-flow); of the 3 cells: ahead of every kept anchor in 1, at or ahead of each in 2")
    assert unguided[1].startswith("**iPNDM** `ss_ipndm` 1 of 1 (digits-cfg1); of the 1 cell: ahead")  # CFG 1 unguided
    # a schedule other than the model's default is named; guided cells are a situation of their own
    assert guided[0].startswith("**iPNDM 2M** `ss_ipndm_2m` 2 of 2 (digits-cfg6, digits-cfg3 `normal`)")
    assert guided[1] == "– |"
    assert not any("KID to the data" in r for r in rows)  # no data tables, no data rows


_BELOW_TABLE = """<!-- bench-decided-digits-eps-karras-deterministic-nfe8:start -->
- **converged ODE** (...): 28.6 ± 7.8; paired DEIS − it: 1.42 ± 1.67

| solver | source | calls | KID | paired Δ = DEIS − row | verdict |
|---|---|---:|---:|---:|---|
| deis | ComfyUI | 8 | 25.9 ± 7.8 | 4.04 ± 1.42 | ours behind; the row 2.71 ± 0.41 below the converged ODE |
| DEIS | ours | 8 | 30.0 ± 9.1 | – | our best |
| lms | k-diffusion | 8 | 31.0 ± 9.1 | 1.1 ± 0.2 | ours behind |
| dpmpp_2m | k-diffusion | 8 | 37.1 ± 10.6 | -7.09 ± 2.47 | ours ahead |
<!-- bench-decided-digits-eps-karras-deterministic-nfe8:end -->
"""


def test_an_anchor_below_the_converged_process_is_behind_with_that_said():
    """An anchor ahead of ours that itself lies below the converged process (a table scored by
    the data, bench/decide.py) stays "behind" in the overview, with that named, and the advice
    counts the cells behind only such anchors apart."""
    (cell,) = parse_decided(_BELOW_TABLE)
    assert cell.behind == [("`deis` (ComfyUI)", "4.04 ± 1.42"), ("`lms` (k-diffusion)", "1.1 ± 0.2")]
    assert cell.below == ["`deis` (ComfyUI)"] and not cell.behind_only_below and not cell.at_or_ahead
    assert cell.text() == ("DEIS: **behind** `deis` (ComfyUI) (4.04 ± 1.42; the anchor below the converged ODE), "
                           "`lms` (k-diffusion) (1.1 ± 0.2); ahead of 1 of 3")
    (only,) = parse_decided(_BELOW_TABLE.replace("| 1.1 ± 0.2 | ours behind |", "| 1.1 ± 0.9 | level |"))
    assert only.behind_only_below and not only.at_or_ahead
    assert advice_markdown([only, cell]).splitlines()[-1].endswith(
        "ahead of every kept anchor in 0, at or ahead of each in 0, behind only anchors below the converged "
        "process in 1 |")


def test_an_anchor_of_another_sde_below_its_own_converged_process_is_named_so():
    """An anchor of another SDE (a noise window) ahead of ours that lies below its own process
    at the limit's calls counts as below a converged process, and the overview says it is its
    own."""
    table = _BELOW_TABLE.replace("deterministic", "stochastic").replace(
        "| deis | ComfyUI | 8 | 25.9 ± 7.8 | 4.04 ± 1.42 | ours behind; the row 2.71 ± 0.41 below the converged ODE |",
        "| sa_solver | ComfyUI | 8 | 25.9 ± 7.8 | 4.04 ± 1.42 | ours behind; the row 2.71 ± 0.41 below its own "
        "converged SDE |").replace("| 1.1 ± 0.2 | ours behind |", "| 1.1 ± 0.9 | level |")
    (cell,) = parse_decided(table)
    assert cell.below == cell.own == ["`sa_solver` (ComfyUI)"] and cell.behind_only_below
    assert cell.text().startswith("DEIS: **behind** `sa_solver` (ComfyUI) (4.04 ± 1.42; the anchor below its own "
                                  "converged SDE); level with")
    (plain,) = parse_decided(_BELOW_TABLE)
    assert plain.own == [] and "below the converged ODE" in plain.text()


def test_the_room_line_is_read_back_and_counted_in_the_advice():
    """A table's room line (bench/decide.py: how many kept anchors of its process the exact
    solve is ahead of) is read into the cell, and the advice counts the cells where the exact
    solve leads every such anchor among the cells that state it."""
    from seeds_samplers.bench.decide import ROOM

    roomy = _BELOW_TABLE.replace(
        "- **converged ODE** (...): 28.6 ± 7.8; paired DEIS − it: 1.42 ± 1.67\n",
        "- **converged ODE** (...): 28.6 ± 7.8; paired DEIS − it: 1.42 ± 1.67\n"
        f"- **room** (the converged ODE minus ...): {ROOM} 2 of 3 kept anchors of it; deis (ComfyUI) 2.7 ± 0.4; "
        "lms (k-diffusion) -2.4 ± 0.1 ahead; dpmpp_2m (k-diffusion) -8.5 ± 1.0 ahead\n")
    (cell,) = parse_decided(roomy)
    assert cell.room == (2, 3) and not cell.exact_ahead_of_all
    (plain,) = parse_decided(_BELOW_TABLE)
    assert plain.room is None
    full = Cell(**{**cell.__dict__, "room": (3, 3), "model": "patches-eps"})
    assert full.exact_ahead_of_all
    line = advice_markdown([cell, full, plain]).splitlines()[-1]
    assert line.endswith("the exact solve itself ahead of every kept anchor of its process in 1 of the 2 that "
                         "measure it |")
    assert "that measure it" not in advice_markdown([plain])


def test_advice_reads_the_latest_table_of_a_cell(tmp_path):
    page = tmp_path / "benchmark.md"
    rerun = _TABLE.replace("| 91 ± 2 | – | our best", "| 91 ± 2 | 11 ± 1 | behind our best").replace(  # DEIS best
        "| DEIS | ours | 5 | 230 ± 3 | -101 ± 1 | behind our best", "| DEIS | ours | 5 | 80 ± 3 | – | our best")
    page.write_text(_TABLE + rerun)
    text = advice_section(page)
    assert "**DEIS** `ss_deis` 1 of 1 (digits-cfg3 `sgm_uniform`)" in text and "iPNDM 2M" not in text


@pytest.mark.parametrize("section, make", [(SECTION, lambda page: overview_markdown(page)),
                                           (ADVICE_SECTION, lambda page: advice_section(page))])
def test_readme_sections_match_the_decided_tables(section, make):
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {section}:start -->\n(.*?)\n<!-- {section}:end -->", readme, re.S)
    assert m, f"README has no {section} section"
    assert m.group(1).strip() == make(ROOT / "docs" / "benchmark.md").strip(), (
        f"README's {section} section is stale: run python -m seeds_samplers docs --readme README.md")


@pytest.mark.parametrize("name, schedule, kind, nfe, yardstick", [
    ("digits-cfg3", "sgm_uniform", "deterministic", 5, "limit"), ("patches-flow", "simple", "stochastic", 20, "data"),
    ("digits-eps", "karras", "stochastic", 10, "limit"), ("digits-cfg6", "normal", "deterministic", 8, "data"),
    ("patches-eps", "karras", "stochastic", 20, "path")])
def test_cells_are_named_as_the_bench_names_its_sections(name, schedule, kind, nfe, yardstick):
    """parse_decided reads back every field decide.section_name writes (the pattern is its inverse)."""
    from seeds_samplers.bench.decide import OUR_BEST, section_name

    section = section_name(name, schedule, kind, nfe, yardstick)
    text = (f"<!-- {section}:start -->\n| DEIS | ours | {nfe} | 1 ± 1 | – | {OUR_BEST} |\n"
            f"<!-- {section}:end -->\n")
    (cell,) = parse_decided(text)
    assert (cell.model, cell.schedule, cell.kind, cell.nfe, cell.yardstick, cell.best) == \
        (name, schedule, kind, nfe, yardstick, "DEIS")
