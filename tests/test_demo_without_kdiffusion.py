"""``python -m seeds_samplers demo`` on a machine without k-diffusion (the ``demo`` extra leaves
it out): the command runs the pack's samplers on the exact model and the digits model, says
that the k-diffusion baselines were left out and how to add them, and exits 0.

k-diffusion is made unimportable in a child interpreter by a ``sys.meta_path`` finder that
refuses ``k_diffusion`` and its submodules (as an uninstalled package would), so the test
means the same whether or not this Python has k-diffusion installed; the child then runs the
command exactly as ``python -m seeds_samplers demo ...`` does (``runpy`` on the package).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from seeds_samplers.bench.demo import BASELINES
from seeds_samplers.samplers.registry import SAMPLERS

CHILD = r"""
import json, runpy, sys

class NoKDiffusion:
    '''Refuses k_diffusion like a Python without it: ModuleNotFoundError from find_spec.'''
    blocked = []

    def find_spec(self, name, path=None, target=None):
        if name == "k_diffusion" or name.startswith("k_diffusion."):
            self.blocked.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

blocker = NoKDiffusion()
sys.meta_path.insert(0, blocker)
for name in [m for m in sys.modules if m == "k_diffusion" or m.startswith("k_diffusion.")]:
    del sys.modules[name]
sys.argv = ["seeds_samplers"] + sys.argv[1:]
try:
    runpy.run_module("seeds_samplers", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as e:
    code = e.code
print("CHILD-RESULT " + json.dumps({"code": code, "blocked": sorted(set(blocker.blocked)),
                                    "loaded": sorted(m for m in sys.modules if m.startswith("k_diffusion"))}))
sys.exit(code)
"""


def test_demo_runs_without_kdiffusion_and_says_so(tmp_path):
    args = ["demo", "--samples", "16", "--budgets", "5", "--digits-samples", "8", "--digits-budgets", "4",
            "--threads", "1", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.split("CHILD-RESULT ", 1)[1].splitlines()[0])
    assert result["code"] in (0, None) and result["loaded"] == []
    assert "k_diffusion" in result["blocked"]  # the demo did try it: the blocker is what left it out
    # it says so, naming the baselines and how to add them
    assert f"k-diffusion baselines ({', '.join(BASELINES)}) left out: k-diffusion is not importable" in done.stdout
    assert 'pip install -e ".[kdiffusion]"' in done.stdout
    # the pack's samplers ran on both models, no baseline row
    md = (tmp_path / "demo.md").read_text()
    for spec in SAMPLERS.values():
        assert md.count(f"| {spec.title} | ours |") == 2, spec.title  # exact-model table and digits table
    assert "| k-diffusion |" not in md
    assert (tmp_path / "demo_digits_eps_nfe4.png").stat().st_size > 5000
