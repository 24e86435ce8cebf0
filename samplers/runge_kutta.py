"""Explicit Runge-Kutta steps on dx/dsigma = eps(x, sigma) = (x - D(x, sigma)) / sigma.

One stage loop (:func:`rk_step`) serves both users: the deterministic steps that
:mod:`.run` takes in sigma for single-step solvers (:data:`SIGMA_STEP_TABLEAUS`, no stage
at the step's end), and rhoRK-DEIS (:data:`DEIS_RK_TABLEAUS`, Zhang & Chen 2023, Sec. 4,
"rho-RK"). Coefficients are float64 Python numbers computed once per step before the
step loop (:func:`rk_plan`); the step itself is tensor arithmetic only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["Tableau", "TABLEAUS", "SIGMA_STEP_TABLEAUS", "DEIS_RK_TABLEAUS", "RKPlan", "rk_plan", "rk_step"]

# (c, A, b): stage fractions, the strictly lower-triangular stage weights, the final weights.
Tableau = Tuple[Tuple[float, ...], Tuple[Tuple[float, ...], ...], Tuple[float, ...]]

TABLEAUS: Dict[str, Tableau] = {
    "euler": ((0.0,), ((),), (1.0,)),
    # Ralston's second-order rule: its stage (2/3) is not at the step's end
    "ralston2": ((0.0, 2.0 / 3.0), ((), (2.0 / 3.0,)), (0.25, 0.75)),
    # Heun's third-order rule: stages at 1/3 and 2/3, none at the step's end
    "heun3": ((0.0, 1.0 / 3.0, 2.0 / 3.0), ((), (1.0 / 3.0,), (0.0, 2.0 / 3.0)), (0.25, 0.0, 0.75)),
    # Heun's second-order rule (EDM's step)
    "heun2": ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    # Kutta's third-order rule (DEIS "3kutta")
    "kutta3": ((0.0, 0.5, 1.0), ((), (0.5,), (-1.0, 2.0)), (1 / 6, 4 / 6, 1 / 6)),
    # the classic fourth-order rule
    "rk4": ((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 2 / 6, 2 / 6, 1 / 6)),
}

# order -> tableau of the steps in sigma of a single-step solver (as many stages as its
# model calls per step; no stage at the end, which may be sigma = 0)
SIGMA_STEP_TABLEAUS: Dict[int, Tableau] = {1: TABLEAUS["euler"], 2: TABLEAUS["ralston2"], 3: TABLEAUS["heun3"]}
# order -> rhoRK-DEIS method: Euler (= DDIM), Heun, Kutta, RK4
DEIS_RK_TABLEAUS: Dict[int, Tableau] = {1: TABLEAUS["euler"], 2: TABLEAUS["heun2"], 3: TABLEAUS["kutta3"],
                                        4: TABLEAUS["rk4"]}


@dataclass(frozen=True)
class RKPlan:
    """Float64 coefficients of one step from sigma s0 to s1: ``a`` = h A, ``b`` = h b,
    ``inv`` = 1 / sigma at each stage, ``sig`` the stage sigmas on the device, ``alpha``
    the signal scale at each stage (CFG++'s shifted stage points)."""

    a: List[List[float]]
    b: List[float]
    inv: List[float]
    sig: torch.Tensor
    alpha: List[float]


def rk_plan(tableau: Tableau, s0: float, s1: float, to_device: Callable[[Sequence[float]], torch.Tensor],
            alpha: Optional[Callable[[float], float]] = None) -> RKPlan:
    """The step's coefficients (host side, once per step); ``alpha(sigma)`` the model's
    signal scale (default 1)."""
    c, A, b = tableau
    h = s1 - s0
    sig = [s0 + ck * h for ck in c]
    return RKPlan(a=[[aij * h for aij in row] for row in A], b=[bj * h for bj in b],
                  inv=[1.0 / v for v in sig], sig=to_device(sig),
                  alpha=[1.0 if alpha is None else alpha(v) for v in sig])


# (x, D, alpha) -> the point whose eps is read with D (CFG++, :func:`.cfg_pp.shift`)
Shift = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def rk_step(x: torch.Tensor, eps0: torch.Tensor, plan: RKPlan,
            denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shift: Optional[Shift] = None) -> torch.Tensor:
    """x + sum_j b_j k_j, k_0 = ``eps0`` (the step start's eps, already known) and
    k_j = (x_j - D(x_j)) / sigma_j at the later stages (one model call each); with
    ``shift`` (CFG++) k_j = (shift(x_j, D_j, alpha_j) - D_j) / sigma_j."""
    ks = [eps0]
    for st in range(1, len(plan.b)):
        x_st = x
        for a, k in zip(plan.a[st], ks):
            if a != 0.0:
                x_st = x_st + k * a
        d_st = denoise(x_st, plan.sig[st])
        if shift is not None:
            x_st = shift(x_st, d_st, plan.alpha[st])
        ks.append((x_st - d_st) * plan.inv[st])
    for bj, k in zip(plan.b, ks):
        if bj != 0.0:
            x = x + k * bj
    return x
