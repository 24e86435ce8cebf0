"""``python -m seeds_samplers sigma-steps``: the orders of the deterministic solvers on the
hosts' own schedules, with and without the steps in sigma (samplers/run.py), against the
converged probability-flow ODE: at sigma = 0 on a flow model (timestep shift 3, as SD3's,
and 1, as ComfyUI's default for other flow models), at the final denoise on SD's discrete
VP model. Schedules: flow + simple and flow + normal (lambda-steps of width O(1) near
sigma = 0 whatever the step count), SD + normal (one long last step into sigma_min) and
SD + karras (no long step). 40 / 80 / 160 / 320 steps; RMS error over 16
samples of a 4-component mixture with component stds 0.5-0.8 (smooth enough that 320
steps on a 1,000-entry sigma table reach the asymptotic regime); "off" =
``sigma_steps=False`` (every step as in the papers). Writes docs/sigma_steps.md with ``--doc``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..samplers import SAMPLERS
from .compare import reference_solve
from .gmm import AnalyticDenoiser, GaussianMixture
from .host_schedules import host_sigmas

CASES = {  # label: (model kind, host schedule, flow timestep shift)
    "flow + simple": ("flow", "simple", 3.0),
    "flow + normal": ("flow", "normal", 3.0),
    "flow shift 1 + simple": ("flow", "simple", 1.0),
    "flow shift 1 + normal": ("flow", "normal", 1.0),
    "SD + normal": ("vp_discrete", "normal", 1.0),
    "SD + karras": ("vp_discrete", "karras", 1.0),
}
# label: (sampler id, parameters, theoretical order)
SOLVERS: Dict[str, Tuple[str, dict, int]] = {
    "SEEDS-1 (eta 0)": ("seeds_1", dict(eta=0.0), 1),
    "SEEDS-2 phi_1 (eta 0)": ("seeds_2", dict(eta=0.0, variant="phi_1"), 2),
    "SEEDS-2 phi_2 (eta 0)": ("seeds_2", dict(eta=0.0, variant="phi_2"), 2),
    "SEEDS-3 (eta 0)": ("seeds_3", dict(eta=0.0), 3),
    "ER-SDE-2 (eta 0)": ("er_sde", dict(eta=0.0, order=2), 2),
    "ER-SDE-3 (eta 0)": ("er_sde", dict(eta=0.0, order=3), 3),
    "DEIS log-rho 3": ("deis", dict(variant="logrho", order=3), 3),
    "DEIS tAB 3": ("deis", dict(variant="tab", order=3), 3),
    "DEIS rhoAB 3": ("deis", dict(variant="rhoab", order=3), 3),
    "DEIS rhoRK 3": ("deis", dict(variant="rhork", order=3), 3),
    "iPNDM-3 variable": ("ipndm", dict(variant="variable", order=3), 3),
    "iPNDM-3 fixed": ("ipndm", dict(variant="fixed", order=3), 3),
}
STEPS = (40, 80, 160, 320)
STDS = (0.5, 0.6, 0.8, 0.7)

# Rows below theory - 0.3, with the bound the tests hold them to and the reason (NOTES).
EXCEPTIONS: Dict[Tuple[str, str], float] = {
    ("SD + normal", "DEIS log-rho 3"): 2.3,
    ("SD + normal", "DEIS rhoAB 3"): 2.4,
    ("SD + normal", "DEIS rhoRK 3"): 2.4,
    ("SD + normal", "iPNDM-3 variable"): 2.4,
    ("flow + simple", "iPNDM-3 fixed"): None,  # stalls: no order
    ("flow + normal", "iPNDM-3 fixed"): 1.5,
    ("flow shift 1 + simple", "iPNDM-3 fixed"): 1.3,
    ("flow shift 1 + normal", "iPNDM-3 fixed"): 1.8,
    ("SD + normal", "iPNDM-3 fixed"): 1.3,
    ("SD + karras", "iPNDM-3 fixed"): 1.8,
}

NOTES = """## Reading the table

The order columns are least-squares slopes over 80 / 160 / 320 steps. With the steps in
sigma on (the default) every row reaches its theoretical order within 0.3 except these,
which `tests/test_sigma_steps.py` holds to the bounds in `bench/sigma_steps.py`
(`EXCEPTIONS`):

* **SD + normal** (2.5-2.7 for most order-3 solvers; tAB, a polynomial in the model's own
  time, 3.3): SD's sigma(t) behaves like sqrt(t) near t = 0 and *normal* ends at the first
  timestep, so the last step spans sigma_min to about sqrt(1000 / n) sigma_min, a length
  proportional to n^-1/2 until n approaches the 1,000 timesteps. A method of order p errs
  there by about n^-(p+1)/2: the measured slope lies between (p + 1) / 2 and p at every
  step count a host offers. The steps in sigma still cut the error 2-7x at 80-320 steps.
* **iPNDM fixed**: its constant-step weights assume equal steps. On *simple* at shift 3,
  whose steps differ by a whole timestep of the table (a relative jitter that grows with
  n), its error stalls; elsewhere it is of order 1.5-2. `variant="variable"` has the full
  order.

On flow models SEEDS-3 and ER-SDE-3 also take the head steps (ending below lambda = -2)
in sigma: near sigma = 1 a lambda-step's width does not shrink with n, so the head's
lambda-steps err by O(n^-2) whatever the order ([algorithms.md](algorithms.md)). ER-SDE-3's
first head step is then an Euler step in sigma, which the corrected start redoes once the
second model output is known; before it did, ER-SDE-3 was second order at shift 1 (slope
2.08 on *simple*).

Without the steps in sigma ("off"), the lambda-solvers are about second order on the flow
schedules and on SD + normal, as the module docstring of `samplers/run.py` explains. Rules
and reasons: [algorithms.md](algorithms.md) ("Steps in sigma", "Corrected start").
"""


def order_problem(kind: str, shift: float = 3.0, samples: int = 16) -> Tuple[AnalyticDenoiser, torch.Tensor]:
    """The smooth 4-component mixture model of this page and its initial latents (``shift``:
    a flow model's timestep shift)."""
    g = torch.Generator().manual_seed(0)
    mix = GaussianMixture(torch.randn((4, 3, 8, 8), generator=g, dtype=torch.float64), list(STDS),
                          [0.4, 0.3, 0.2, 0.1])
    model = AnalyticDenoiser(mix, kind=kind, shift=shift)
    return model, model.prior_sample(samples, model.sigma_max, torch.Generator().manual_seed(1))


def order_reference(kind: str, model: AnalyticDenoiser, x: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    """The converged ODE: to sigma = 1e-9 on flow models (RK4 in lambda, 2,400 steps; its
    own error is below 1e-9 here), else to the last positive sigma followed by the final
    denoise (1,600 steps)."""
    mt = model.seeds_model_type
    s0 = mt.prepare_sigmas([float(sig[0]), 0.5])[0]
    if kind == "flow":
        return reference_solve(model, x, 1e-9, s0, steps=2400)
    y = reference_solve(model, x, float(sig[-2]), s0, steps=1600)
    return model(y, torch.tensor(float(sig[-2]), dtype=torch.float64))


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean().sqrt())


def slope(steps: Sequence[int], errs: Sequence[float]) -> float:
    """Least-squares slope of -log(error) against log(steps)."""
    lx = [math.log(n) for n in steps]
    ly = [-math.log(e) for e in errs]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def errors(sid: str, params: dict, kind: str, schedule: str, shift: float, steps: Sequence[int],
           sigma_steps: bool = True) -> List[float]:
    """RMS error of one deterministic solver against :func:`order_reference`."""
    model, x = order_problem(kind, shift)
    out = []
    for n in steps:
        sig = host_sigmas(schedule, n, model.seeds_model_type)
        key = (kind, schedule, shift, n)
        if key not in _REFERENCES:
            _REFERENCES[key] = order_reference(kind, model, x, sig)
        got = SAMPLERS[sid].function(model, x.clone(), sig, disable=True, sigma_steps=sigma_steps, **params)
        out.append(rms(got, _REFERENCES[key]))
    return out


_REFERENCES: Dict[tuple, torch.Tensor] = {}


def measure(log: Callable[[str], None] = print) -> List[dict]:
    rows = []
    for case, (kind, schedule, shift) in CASES.items():
        for label, (sid, params, theory) in SOLVERS.items():
            row = dict(case=case, solver=label, theory=theory)
            for mode, flag in (("off", False), ("on", True)):
                row[mode] = errors(sid, params, kind, schedule, shift, STEPS, flag)
                row[mode + "_order"] = slope(STEPS[1:], row[mode][1:])
            rows.append(row)
            log(f"{case:22s} {label:22s} off " + " ".join(f"{e:.2e}" for e in row["off"])
                + f" ({row['off_order']:.2f})  on " + " ".join(f"{e:.2e}" for e in row["on"])
                + f" ({row['on_order']:.2f}, theory {theory})")
    return rows


def markdown(rows: List[dict]) -> str:
    head = ("| schedule | solver | theory | " + " | ".join(f"off {n}" for n in STEPS) + " | order off | "
            + " | ".join(f"on {n}" for n in STEPS) + " | order on |")
    lines = [head, "|" + "---|" * (5 + 2 * len(STEPS))]
    for r in rows:
        lines.append(f"| {r['case']} | {r['solver']} | {r['theory']} | " + " | ".join(f"{e:.2e}" for e in r["off"])
                     + f" | {r['off_order']:.2f} | " + " | ".join(f"{e:.2e}" for e in r["on"])
                     + f" | **{r['on_order']:.2f}** |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers sigma-steps", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", type=Path, default=None, help="write the table to this markdown file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = measure()
    if args.doc is not None:
        args.doc.write_text(
            "# Orders on the hosts' schedules\n\nWritten by `python -m seeds_samplers sigma-steps --doc "
            "docs/sigma_steps.md` (a few minutes on one core): "
            + __doc__.split("\n", 1)[1].split("Writes")[0].strip()
            + "\n\n" + markdown(rows) + "\n\n" + NOTES)
        print(f"wrote {args.doc}")
    return 0
