"""DEIS: diffusion exponential integrator samplers (Zhang & Chen, ICLR 2023, arXiv 2204.13902).

docs/algorithms.md (DEIS). In k-diffusion variables (x = x_VP / sqrt(abar), sigma = DEIS's rho) the
probability-flow ODE is dx/dsigma = eps(x, sigma) with eps = (x - D) / sigma, and every
variant takes steps

    x_{i+1} = x_i + sum_j C_ij eps_{i-j}.

Multistep (Adams-Bashforth) variants interpolate eps through the current and previous
nodes with a Lagrange polynomial in some variable tau and integrate it exactly over sigma:
C_ij = int_{sigma_i}^{sigma_{i+1}} l_j(tau(sigma)) dsigma, so sum_j C_ij = sigma_{i+1} - sigma_i.

* ``"tab"``   tAB-DEIS: tau = the model's own (VP) time (:mod:`.vp_time`); C_ij by
  Gauss-Legendre in float64, split at the kinks of a discrete time table.
* ``"rhoab"`` rhoAB-DEIS: tau = sigma; closed form (polynomial integrals).
* ``"logrho"`` diffusers' DEISMultistepScheduler: tau = log sigma; closed form, with
  int u^k e^u du by series for short steps (no cancellation) and by its limit for a
  step to sigma = 0 (no 0 * log 0).
* ``"rhork"`` rhoRK-DEIS: explicit Runge-Kutta in sigma, stages at sigma_i + c h.

Order. ``order`` is the convergence order everywhere in this package, i.e. the number of
eps values combined per step (multistep) or the RK method (1 Euler, 2 Heun, 3 Kutta's
third-order rule, 4 classic RK4). The DEIS paper's tAB-r / rhoAB-r (``ab_order = r``,
polynomial degree r) is ``order = r + 1``; diffusers' ``solver_order = k`` is ``order = k``.
Order 1 is DDIM for every variant.

Warm-up: step i of a multistep variant uses min(order, i + 1) nodes; with
``corrected_start`` (order >= 3) the first step is then redone with two nodes
(:mod:`.run`, corrected start). ``lower_order_final``
is diffusers' rule: with fewer than 15 steps, the last step uses 1 node and the one before
at most 2. A final step to sigma = 0 returns the denoised estimate (1 model call), which
is also every variant's first-order step there.

Flow models (x = (1 - sigma) x0 + sigma noise) are stepped directly in sigma:
dx/dsigma = (x - D) / sigma is their exact probability-flow ODE (the velocity), so no
change of variables is needed and a first sigma of 1 is harmless. Consequently
``"logrho"`` on a flow model interpolates in log sigma, not in diffusers'
log(sigma / (1 - sigma)); the two agree at first order.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch

from .lagrange import poly_from_roots, rhoab_coefficients
from .multistep import MAX_ORDER, Multistep, multistep_orders
from .quadrature import gauss_legendre
from .params import CORRECTED_START, SIGMA_STEPS, STOP_AT_SIGMA_MIN
from .registry import Param, SamplerSpec, checked, register
from .cfg_pp import CFG_PP, UncondSource
from .run import History, Method, SamplerRun, Solver, Variable
from .runge_kutta import DEIS_RK_TABLEAUS
from .vp_time import TAU_MAPS, TimeMap, model_time

__all__ = ["sample_deis", "DEIS_VARIANTS", "tab_coefficients", "logrho_coefficients"]

DEIS_VARIANTS = ("tab", "rhoab", "logrho", "rhork")


# --- coefficients (host side, float64) ------------------------------------------------


def _lagrange_basis(t: np.ndarray, nodes: Sequence[float]) -> np.ndarray:
    """l_j(t) for every node j: array of shape (len(t), len(nodes))."""
    out = np.ones((len(t), len(nodes)))
    for j, tj in enumerate(nodes):
        for m, tm in enumerate(nodes):
            if m != j:
                out[:, j] *= (t - tm) / (tj - tm)
    return out


def _panels(lo: float, hi: float, breakpoints: np.ndarray) -> np.ndarray:
    """Edges splitting [lo, hi] at the map's kinks and into pieces at most e wide in log
    sigma (so Gauss-Legendre stays at round-off however wide the step)."""
    inner = breakpoints[(breakpoints > lo) & (breakpoints < hi)]
    coarse = np.concatenate(([lo], inner, [hi]))
    edges = [coarse[:1]]
    for a, b in zip(coarse[:-1], coarse[1:]):
        if a == 0.0:  # a step to sigma = 0: one panel at the bottom, geometric above it
            a = b * 1e-6
            edges.append(np.array([a]))
        pieces = max(1, math.ceil(math.log(b / a)))
        edges.append(np.geomspace(a, b, pieces + 1)[1:] if pieces > 1 else np.array([b]))
    return np.concatenate(edges)


def tab_coefficients(
    tau: TimeMap, nodes: Sequence[float], s0: float, s1: float, n_gauss: int = 16
) -> List[float]:
    """C_j = int_{s0}^{s1} l_j(tau(sigma)) dsigma with l_j the Lagrange basis in tau through
    tau(nodes) (``nodes[0]`` is normally ``s0``), by panelled Gauss-Legendre in float64.

    Any sigma interval is allowed, including s1 = 0; sum_j C_j = s1 - s0 to round-off.
    """
    lo, hi = min(s0, s1), max(s0, s1)
    if lo == hi:
        return [0.0] * len(nodes)
    if len(nodes) == 1:
        return [s1 - s0]
    edges = _panels(lo, hi, tau.breakpoints)
    gx, gw = gauss_legendre(n_gauss)
    half = 0.5 * (edges[1:] - edges[:-1])
    mid = 0.5 * (edges[1:] + edges[:-1])
    sig = (mid[:, None] + half[:, None] * gx[None, :]).ravel()
    wts = (half[:, None] * gw[None, :]).ravel()
    basis = _lagrange_basis(tau(sig), [float(v) for v in tau(np.asarray(nodes, dtype=np.float64))])
    sign = 1.0 if s1 > s0 else -1.0
    return [sign * float(v) for v in wts @ basis]


def _int_pow_exp(k: int, H: float) -> float:
    """I_k(H) = int_0^H u^k e^u du (H <= 0; H = -inf allowed).

    Series sum_n H^(k+n+1) / (n! (k+n+1)) for |H| < 2 (the closed form would cancel);
    closed form e^H sum_m (-1)^(k-m) k!/m! H^m - (-1)^k k! otherwise; its limit
    -(-1)^k k! for H = -inf (a step to sigma = 0).
    """
    sign = -1.0 if k % 2 else 1.0
    if math.isinf(H):
        return -sign * math.factorial(k)
    if abs(H) < 2.0:
        total, term = 0.0, H ** (k + 1)  # term = H^(k+n+1) / n!
        for n in range(60):
            total += term / (k + n + 1)
            term *= H / (n + 1)
            if abs(term) < 1e-18 * abs(total):
                break
        return total
    poly = sum((-1.0) ** (k - m) * math.factorial(k) / math.factorial(m) * H**m for m in range(k + 1))
    return math.exp(H) * poly - sign * math.factorial(k)


def logrho_coefficients(nodes: Sequence[float], s0: float, s1: float) -> List[float]:
    """C_j = int_{s0}^{s1} l_j(log sigma) dsigma in closed form (diffusers' log-rho DEIS).

    With u = log(sigma / s0), sigma = s0 e^u and C_j = s0 sum_k c_jk I_k(H), where
    l_j(u) = sum_k c_jk u^k and H = log(s1 / s0) (-inf for s1 = 0: the step to zero is the
    limit, never 0 * log 0).
    """
    if len(nodes) == 1:
        return [s1 - s0]
    H = -math.inf if s1 == 0.0 else math.log(s1 / s0)
    u = [math.log(s / s0) for s in nodes]
    ints = [_int_pow_exp(k, H) for k in range(len(nodes))]
    out = []
    for j, uj in enumerate(u):
        others = [um for m, um in enumerate(u) if m != j]
        integral = sum(c * ik for c, ik in zip(poly_from_roots(others), ints))
        out.append(s0 * integral / math.prod(uj - um for um in others))
    return out


class _RhoRK(Solver):
    """rhoRK-DEIS: explicit Runge-Kutta in sigma (:data:`~.runge_kutta.DEIS_RK_TABLEAUS`);
    its first stage is the step start's eps, which the loop keeps in the history."""

    def __init__(self, run: SamplerRun):
        super().__init__(run)
        self.plans = run.rk_plans(DEIS_RK_TABLEAUS, run.solver_steps)

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor, history: History) -> torch.Tensor:
        return self.run.rk_step(x, history.eps[0], self.plans[i])


_PARAMS = (
    Param("variant", "tab",
          "tab: polynomial in the model's own time (paper's best); rhoab: in sigma; "
          "logrho: in log sigma (diffusers); rhork: Runge-Kutta in sigma.",
          choices=DEIS_VARIANTS),
    Param("order", 3,
          "Convergence order = eps values per step (paper's tAB-r is r+1, diffusers' solver_order k is k); "
          "rhork: 1 Euler, 2 Heun, 3 Kutta, 4 RK4 (that many calls per step).",
          1, MAX_ORDER, 1),
    Param("tau_map", "auto",
          "tab only: auto = the model's own time (discrete table, fitted VP-SDE, flow time); "
          "vp_fit = the VP-SDE fitted to the model's sigma range.",
          choices=TAU_MAPS),
    Param("lower_order_final", True,
          "Multistep only: with fewer than 15 steps, last step order 1 and the one before "
          "at most 2 (diffusers' default)."),
    STOP_AT_SIGMA_MIN, SIGMA_STEPS, CORRECTED_START, CFG_PP,
)


@checked(_PARAMS)
@torch.no_grad()
def sample_deis(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    variant: str = "tab", order: int = 3, tau_map: str = "auto", lower_order_final: bool = True,
    model_type: Any = None, stop_at_sigma_min: bool = False, sigma_steps: bool = True, corrected_start: bool = True, cfg_pp: bool = False,
    uncond: Optional[UncondSource] = None,
) -> torch.Tensor:
    """DEIS, every published variant (1 model call per step; ``order`` calls for rhoRK).

    Args:
        model, x, sigmas, extra_args, callback, disable: k-diffusion's arguments, as
            :func:`~seeds_samplers.samplers.seeds.sample_seeds_1`.
        variant: ``"tab"`` (Lagrange in the model's time, the paper's best), ``"rhoab"``
            (Lagrange in sigma), ``"logrho"`` (Lagrange in log sigma, diffusers'
            DEISMultistepScheduler) or ``"rhork"`` (Runge-Kutta in sigma).
        order: convergence order 1-4 = number of eps values per step for the multistep
            variants (paper's tAB-r is order r + 1; diffusers' solver_order k is order k),
            and for rhork the method: 1 Euler, 2 Heun, 3 Kutta, 4 RK4 (order calls per step).
        tau_map: tAB only: ``"auto"`` = the model's own time (discrete table, fitted VP-SDE
            for continuous models, own time for flow), ``"vp_fit"`` = the linear VP-SDE
            fitted to the model's sigma range (the schedule's range if unknown).
        lower_order_final: multistep only: with fewer than 15 steps, take the last step at
            order 1 and the one before at order <= 2 (diffusers' default).
        model_type: override model-type detection (``"ve"`` or ``"flow"``).
        stop_at_sigma_min: with sigmas ending in 0, stop at the last positive sigma and
            return the state there without the final denoise (as the paper reports FID).
        sigma_steps: multistep variants: long steps near sigma = 0 (tab, logrho) and a flow
            model's final step to 0 as Adams-Bashforth steps in sigma (see :mod:`.run`);
            rhoRK: that final step over the eps at the last steps' starts (no extra call).
        corrected_start: multistep, order >= 3: redo the Euler first step with the two-node
            rule once eps_1 is known (no extra call; :mod:`.run`); off = the papers' and
            diffusers' warm-up.
        cfg_pp, uncond: CFG++, as :func:`~seeds_samplers.samplers.seeds.sample_seeds_1`.

    Every parameter's range and choices: its ``Param`` (checked at entry).
    """
    in_sigma = variant in ("rhoab", "rhork")  # already in sigma: no steps in sigma to add
    rk = variant == "rhork"
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable,
                     method=Method(order=order, multistep=not rk, variable=Variable.SIGMA if in_sigma else Variable.OWN,
                                   eps_depth=1 if rk else order),
                     model_type=model_type, stop_at_sigma_min=stop_at_sigma_min, sigma_steps=sigma_steps,
                     corrected_start=corrected_start, cfg_pp=cfg_pp, uncond=uncond)
    if rk:
        return run.run(_RhoRK(run))
    orders = multistep_orders(run.n_steps, order, lower_order_final)
    if variant == "tab":
        tau = model_time(run.mt, run.sigma, tau_map) if max(orders) > 1 else None

        def weights(nodes, s0, s1):
            return tab_coefficients(tau, nodes, s0, s1)
    else:
        weights = rhoab_coefficients if variant == "rhoab" else logrho_coefficients
    return run.run(Multistep(run, orders, weights))


register(SamplerSpec(
    id="deis", function=sample_deis, family="deis", title="DEIS",
    summary="Diffusion exponential integrator: tAB/rhoAB/log-rho multistep (1 call per step) or rhoRK.",
    params=_PARAMS,
    calls_per_step=lambda p: p["order"] if p["variant"] == "rhork" else 1, stochastic=False,
    # most accurate variant against the converged ODE at 10-50 NFE (README benchmark)
    menu={"variant": "logrho", "order": 3},
))
