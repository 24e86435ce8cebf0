"""``python -m seeds_samplers sigma-steps``: what the steps in sigma (samplers/run.py) change,
measured against the converged probability-flow ODE on the host schedules where lambda-steps
are long (flow + simple, flow + normal, SD + normal) and one where they are not (SD +
karras). Deterministic solvers, 20 / 40 / 80 steps, max-abs error of 4 samples on a
4-component mixture; "off" = ``sigma_steps=False`` (every step as in the papers).
Writes docs/sigma_steps.md with ``--doc``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import List, Optional

import torch

from ..samplers import SAMPLERS
from .compare import reference_solve
from .gmm import AnalyticDenoiser, GaussianMixture
from .host_schedules import host_sigmas

CASES = {  # label: (model kind, host schedule)
    "flow + simple": ("flow", "simple"),
    "flow + normal": ("flow", "normal"),
    "SD + normal": ("vp_discrete", "normal"),
    "SD + karras": ("vp_discrete", "karras"),
}
SOLVERS = {
    "SEEDS-3 (eta 0)": ("seeds_3", dict(eta=0.0)),
    "SEEDS-2 phi_2 (eta 0)": ("seeds_2", dict(eta=0.0, variant="phi_2")),
    "ER-SDE-3 (eta 0)": ("er_sde", dict(eta=0.0)),
    "DEIS log-rho 3": ("deis", dict(variant="logrho", order=3)),
    "DEIS tAB 3": ("deis", dict(variant="tab", order=3)),
    "iPNDM-3 variable": ("ipndm", dict(variant="variable", order=3)),
}
STEPS = (20, 40, 80)

NOTES = """## Reading the table

* **flow + simple**: the last positive sigma is about 3 / n, and `x = D(x, sigma_last)` is a
  first-order step over it; the Adams-Bashforth step to 0 removes that cap. SEEDS-3 reaches
  order 3 (`tests/test_sigma_steps.py` asserts the orders that hold at 80 / 160 / 320 steps).
* **flow + normal** ends at the model's sigma_min (0.003 with shift 3) for every n, so the
  step to 0 has a fixed length: with the Euler final step the error cannot go below that
  step's own error; an Adams-Bashforth step over k stored values converges with the spread
  of its nodes to the power k - 1. SEEDS-3 (three nodes within its last step) keeps order 3;
  the multistep solvers (nodes one step apart) are near order 2.
* **SD + normal**: sigma(t) behaves like sqrt(t) near t = 0, so the last steps are singular in
  both lambda and sigma and every solver is pre-asymptotic at these step counts; the steps in
  sigma still cut the error by 2-6x at 80 steps. Only a polynomial in the model's own time
  (DEIS tAB) sees a smooth problem there.
* **SD + karras**: no step is long enough to switch; the results are bit-identical.
"""


def _problem(kind: str):
    g = torch.Generator().manual_seed(0)
    mix = GaussianMixture(torch.randn((4, 3, 8, 8), generator=g, dtype=torch.float64),
                          [0.15, 0.3, 0.5, 0.25], [0.4, 0.3, 0.2, 0.1])
    model = AnalyticDenoiser(mix, kind=kind, shift=3.0)
    return model, model.prior_sample(4, model.sigma_max, torch.Generator().manual_seed(1))


def _reference(kind: str, model, x, sig) -> torch.Tensor:
    mt = model.seeds_model_type
    s0 = mt.prepare_sigmas([float(sig[0]), 0.5])[0]
    if kind == "flow":  # the ODE to sigma = 0
        return reference_solve(model, x, 1e-8, s0, steps=600)
    y = reference_solve(model, x, float(sig[-2]), s0, steps=400)  # then the final denoise
    return model(y, torch.tensor(float(sig[-2]), dtype=torch.float64))


def measure(log=print) -> List[dict]:
    rows = []
    for case, (kind, schedule) in CASES.items():
        model, x = _problem(kind)
        sigs = {n: host_sigmas(schedule, n, model.seeds_model_type) for n in STEPS}
        refs = {n: _reference(kind, model, x, sigs[n]) for n in STEPS}
        for label, (sid, params) in SOLVERS.items():
            fn = SAMPLERS[sid].function
            row = dict(case=case, solver=label)
            for mode, flag in (("off", False), ("on", True)):
                errs = [(fn(model, x.clone(), sigs[n], disable=True, sigma_steps=flag, **params) - refs[n])
                        .abs().max().item() for n in STEPS]
                row[mode] = errs
                row[mode + "_slope"] = -math.log(errs[-1] / errs[0]) / math.log(STEPS[-1] / STEPS[0])
            rows.append(row)
            log(f"{case:14s} {label:22s} off " + " ".join(f"{e:.2e}" for e in row["off"])
                + f" (slope {row['off_slope']:.2f})  on " + " ".join(f"{e:.2e}" for e in row["on"])
                + f" (slope {row['on_slope']:.2f})")
    return rows


def markdown(rows: List[dict]) -> str:
    head = ("| schedule | solver | " + " | ".join(f"off {n}" for n in STEPS) + " | slope off | "
            + " | ".join(f"on {n}" for n in STEPS) + " | slope on |")
    lines = [head, "|" + "---|" * (4 + 2 * len(STEPS))]
    for r in rows:
        lines.append(f"| {r['case']} | {r['solver']} | " + " | ".join(f"{e:.2e}" for e in r["off"])
                     + f" | {r['off_slope']:.2f} | " + " | ".join(f"{e:.2e}" for e in r["on"])
                     + f" | {r['on_slope']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers sigma-steps", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", type=Path, default=None, help="write the table to this markdown file")
    args = ap.parse_args(argv)
    rows = measure()
    if args.doc is not None:
        args.doc.write_text(
            "# Steps in sigma: measured\n\nWritten by `python -m seeds_samplers sigma-steps --doc "
            "docs/sigma_steps.md`: what the steps in sigma change, " + __doc__.split("\n", 1)[1].split("Writes")[0].strip()
            + " Errors at 20 / 40 / 80 steps and the slope between 20 and 80 (the order "
            "seen); see [algorithms.md](algorithms.md) for the rules.\n\n" + markdown(rows) + "\n\n" + NOTES)
        print(f"wrote {args.doc}")
    return 0
