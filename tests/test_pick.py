"""The README's overview of the decided tables (bench/pick.py): read back from the tables'
own rows, and kept in step with docs/benchmark.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seeds_samplers.bench.pick import SECTION, overview_markdown, parse_decided

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


def test_readme_overview_matches_the_decided_tables():
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {SECTION}:start -->\n(.*?)\n<!-- {SECTION}:end -->", readme, re.S)
    assert m, "README has no decided-overview section"
    assert m.group(1).strip() == overview_markdown(ROOT / "docs" / "benchmark.md").strip(), (
        "README's overview of the decided tables is stale: run python -m seeds_samplers docs --readme README.md")
