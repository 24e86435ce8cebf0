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
(:func:`start_correction`). ``lower_order_final``
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
from .quadrature import gauss_legendre
from .params import CORRECTED_START, SIGMA_STEPS, STOP_AT_SIGMA_MIN
from .registry import Param, SamplerSpec, register
from .run import SamplerRun
from .vp_time import TAU_MAPS, TimeMap, model_time

__all__ = [
    "sample_deis",
    "DEIS_VARIANTS",
    "RK_TABLEAUS",
    "tab_coefficients",
    "rhoab_coefficients",
    "logrho_coefficients",
    "multistep_orders",
]

DEIS_VARIANTS = ("tab", "rhoab", "logrho", "rhork")
MAX_ORDER = 4
# Steps below which diffusers lowers the order of the last two steps.
LOWER_ORDER_FINAL_STEPS = 15

# Explicit RK tableaus (c, A, b) by order, applied to dx/dsigma = eps with nodes linear in sigma.
RK_TABLEAUS = {
    1: ((0.0,), ((),), (1.0,)),  # Euler (= DDIM)
    2: ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),  # Heun (EDM's 2nd-order step)
    3: ((0.0, 0.5, 1.0), ((), (0.5,), (-1.0, 2.0)), (1 / 6, 4 / 6, 1 / 6)),  # Kutta (DEIS "3kutta")
    4: ((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 2 / 6, 2 / 6, 1 / 6)),  # RK4
}


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


def multistep_orders(n_steps: int, order: int, lower_order_final: bool) -> List[int]:
    """Nodes used by each step: warm-up min(order, i + 1), and diffusers' lower-order
    final (fewer than 15 steps: last step 1 node, the one before at most 2)."""
    out = [min(order, i + 1) for i in range(n_steps)]
    if lower_order_final and n_steps < LOWER_ORDER_FINAL_STEPS:
        out[-1] = 1
        if n_steps >= 2:
            out[-2] = min(out[-2], 2)
    return out


# --- the step loops ---------------------------------------------------------------------


def multistep_plan(
    run: SamplerRun, orders: Sequence[int], weights: Callable[[Sequence[float], float, float], List[float]]
) -> List[Optional[List[float]]]:
    """Per step: None for a final denoise step, else the Python-float weights C_ij of
    eps_i, eps_{i-1}, ... (``weights(nodes, sigma_i, sigma_{i+1})``). Steps that
    ``run.mode`` takes in sigma, and a flow model's final step to 0, use the
    Adams-Bashforth weights in sigma (:func:`rhoab_coefficients`) on the same nodes."""
    s = run.sigma
    plan: List[Optional[List[float]]] = []
    for i in range(run.n_steps):
        mode = run.mode[i]
        if mode == "denoise":
            plan.append(None)
            continue
        # the final step in sigma uses the nominal order (no lower-order final there)
        k = min(run.final_nodes(max(orders)), i + 1) if mode == "final_ab" else orders[i]
        nodes = [s[i - j] for j in range(k)]
        rule = weights if mode == "solver" else rhoab_coefficients
        plan.append([float(c) for c in rule(nodes, s[i], s[i + 1])])
    return plan


def start_correction(
    run: SamplerRun, plan: Sequence[Optional[Sequence[float]]], orders: Sequence[int],
    weights: Callable[[Sequence[float], float, float], List[float]],
) -> Optional[List[float]]:
    """Weights (of eps_1, eps_0) that turn the Euler first step into the two-node rule once
    eps_1 is known: x_1 += W_1 eps_1 + (W_0 - C_00) eps_0, no extra model call.

    A multistep method needs starting values accurate to the order it aims at: an Euler
    start (local error O(h^2)) caps the global order at 2. The corrected x_1 errs by
    O(h^3); eps_1, taken at the uncorrected x_1, differs by O(h^2) and enters later steps
    with weights O(h), so solvers of order 3 keep order 3 (docs/orders.md). None when the
    order is below 3 or the first two steps are not ordinary steps."""
    if max(orders) < 3 or run.n_steps < 3 or plan[0] is None or plan[1] is None:
        return None
    if run.mode[0] != "solver" or run.mode[1] not in ("solver", "sigma"):
        return None
    s = run.sigma
    w = weights([s[1], s[0]], s[0], s[1])
    return [float(w[0]), float(w[1] - plan[0][0])]


def run_multistep(run: SamplerRun, plan: Sequence[Optional[Sequence[float]]],
                  start_fix: Optional[Sequence[float]] = None) -> torch.Tensor:
    """x_{i+1} = x_i + sum_j C_ij eps_{i-j}; only tensor arithmetic with Python floats.
    ``start_fix``: :func:`start_correction`, applied to x_1 once eps_1 is known."""
    inv_sigma = [1.0 / s if s > 0 else 0.0 for s in run.sigma]
    depth = max((len(c) for c in plan if c is not None), default=1)
    history: List[torch.Tensor] = []  # eps_i, eps_{i-1}, ... (newest first)
    x = run.x
    for i in run.steps():
        denoised = run.denoise(x, run.sigma_dev[i])
        run.report(i, x, denoised)
        coefs = plan[i]
        if coefs is None:
            x = denoised
            continue
        eps = (x - denoised) * inv_sigma[i]
        history.insert(0, eps)
        del history[depth:]
        if i == 1 and start_fix is not None:
            x = x + history[0] * start_fix[0] + history[1] * start_fix[1]
        for c, e in zip(coefs, history):
            x = x + e * c
    return run.finish(x)


def _run_rk(run: SamplerRun, order: int) -> torch.Tensor:
    c, A, b = RK_TABLEAUS[order]
    s = run.sigma
    plans = []
    for i in range(run.n_steps):
        if run.mode[i] in ("denoise", "final_ab"):
            plans.append(None)
            continue
        h = s[i + 1] - s[i]
        stage_sig = [s[i] + ck * h for ck in c]
        plans.append(dict(
            a=[[aij * h for aij in row] for row in A],
            b=[bj * h for bj in b],
            inv=[1.0 / v for v in stage_sig],
        ))
    stage_dev = run.to_device(
        [s[i] + ck * (s[i + 1] - s[i]) for i in range(run.n_steps) for ck in c]
    ).view(run.n_steps, len(c))
    # A flow model's step to 0 (1 call, as the final denoise): Adams-Bashforth over the
    # eps at the steps' starts (on the solution, unlike the stage values) and at sigma_last.
    history = run.eps_history(order)
    x = run.x
    for i in run.steps():
        denoised = run.denoise(x, run.sigma_dev[i])
        run.report(i, x, denoised)
        p = plans[i]
        if p is None:
            if run.mode[i] == "final_ab":
                history.push(s[i], x, denoised)
                x = history.final_step(x, s[i])
            else:
                x = denoised
            continue
        ks = [(x - denoised) * p["inv"][0]]
        history.push_eps(s[i], ks[0])
        for st in range(1, len(c)):
            x_st = x
            for a, k in zip(p["a"][st], ks):
                if a != 0.0:
                    x_st = x_st + k * a
            d_st = run.denoise(x_st, stage_dev[i, st])
            ks.append((x_st - d_st) * p["inv"][st])
        for bj, k in zip(p["b"], ks):
            x = x + k * bj
    return run.finish(x)


def check_order(order: Any, maximum: int = MAX_ORDER) -> int:
    if isinstance(order, bool) or order not in range(1, maximum + 1):
        raise ValueError(f"order must be an integer from 1 to {maximum}, got {order!r}")
    return int(order)


@torch.no_grad()
def sample_deis(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None,
    disable: Optional[bool] = None,
    variant: str = "tab",
    order: int = 3,
    tau_map: str = "auto",
    lower_order_final: bool = True,
    model_type: Any = None,
    stop_at_sigma_min: bool = False,
    sigma_steps: bool = True,
    corrected_start: bool = True,
) -> torch.Tensor:
    """DEIS, every published variant (1 model call per step; ``order`` calls for rhoRK).

    Args:
        model: denoiser ``model(x, sigma, **extra_args) -> x0``.
        x: initial latent at ``sigmas[0]``.
        sigmas: decreasing noise levels; a final 0 returns the denoised estimate.
        extra_args: passed to the model.
        callback: called once per step with ``{x, i, sigma, sigma_hat, denoised}``.
        disable: disables the tqdm progress bar.
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
            rule once eps_1 is known (:func:`start_correction`, no extra call); off = the
            papers' and diffusers' warm-up.
    """
    if variant not in DEIS_VARIANTS:
        raise ValueError(f"variant must be one of {DEIS_VARIANTS}, got {variant!r}")
    order = check_order(order)
    if tau_map not in TAU_MAPS:
        raise ValueError(f"tau_map must be one of {TAU_MAPS}, got {tau_map!r}")
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable, model_type=model_type,
                     stop_at_sigma_min=stop_at_sigma_min,
                     sigma_steps=bool(sigma_steps))  # rhoRK steps in sigma anyway: final step only
    if variant == "rhork":
        return _run_rk(run, order)
    orders = multistep_orders(run.n_steps, order, bool(lower_order_final))
    if variant == "tab":
        tau = model_time(run.mt, run.sigma, tau_map) if max(orders) > 1 else None

        def weights(nodes, s0, s1):
            return tab_coefficients(tau, nodes, s0, s1)
    else:
        weights = rhoab_coefficients if variant == "rhoab" else logrho_coefficients
    plan = multistep_plan(run, orders, weights)
    return run_multistep(run, plan, start_correction(run, plan, orders, weights) if corrected_start else None)


register(SamplerSpec(
    id="deis", function=sample_deis, family="deis", title="DEIS",
    summary="Diffusion exponential integrator: tAB/rhoAB/log-rho multistep (1 call per step) or rhoRK.",
    params=(
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
        STOP_AT_SIGMA_MIN, SIGMA_STEPS, CORRECTED_START,
    ),
    calls_per_step=lambda p: p["order"] if p["variant"] == "rhork" else 1, stochastic=False,
    # most accurate variant against the converged ODE at 10-50 NFE (README benchmark)
    dropdown={"variant": "logrho", "order": 3},
))
