"""ER-SDE-Solver orders 1-3 (Cui et al. 2023, arXiv 2309.06169; docs/algorithms.md (ER-SDE)).

The extended reverse-time SDE with noise-scale function phi, in VE-equivalent variables
(x / alpha, s = sigma / alpha), is solved exactly in its linear part:

  x_{i+1} = r x_i + (1 - r) D_i
          + [k >= 2] ((s_{i+1} - s_i) + phi(s_{i+1}) S_i) Delta1_i
          + [k >= 3] ((s_{i+1} - s_i)^2 / 2 + phi(s_{i+1}) S'_i) Delta2_i
          + sqrt(s_{i+1}^2 - r^2 s_i^2) xi,

with r = phi(s_{i+1}) / phi(s_i), S = int ds / phi(s), S' = int (s - s_i) / phi(s) ds over
[s_{i+1}, s_i], and Delta1, Delta2 backward divided differences of the D history.
S and S' are closed forms for power functions and Gauss-Legendre in log s otherwise;
``quadrature="riemann100"`` reproduces the official 100-point left Riemann sum.

Derivatives. The Taylor terms need D'(s_i) and D''(s_i). The official code uses the
backward difference Delta1_i for D'(s_i), which is only first-order accurate; with the
O(h^2) weight of that term the third-order method then has global order 2. By default
(``quadrature="gauss"``) D'(s_i) and D''(s_i) are the derivatives at s_i of the polynomial
through the last k values of D (order 3: Delta1_i + (s_i - s_{i-1}) Delta2_i / 2 and
Delta2_i), which makes a step exact for a denoiser quadratic in s and the method third
order. On flow models the polynomial is taken in the flow sigma u = s / (1 + s) and
differentiated by the chain rule: there s runs from ~1e4 at the head, and differences
across that first interval misestimate D' at the next steps (measured: order 2 instead
of 3, docs/sigma_steps.md). ``quadrature="riemann100"`` keeps the official Delta1_i, so
that mode reproduces the official algorithm as a whole.

Expansion variable. The paper expands D in s. ``expansion="lambda"`` expands it in the
half-log-SNR lambda = -log s instead (D(lambda) = D_i + (lambda - lambda_i) D' + ...), the
variable of exponential integrators (DPM-Solver++, Lu et al. 2022), in which the data
prediction varies slowly where karras-type schedules take long steps in s. Integrating by
parts, the weights of D' and D'' become h - phi(s_{i+1}) T and h^2 / 2 - phi(s_{i+1}) T' with
h = lambda_{i+1} - lambda_i, T = int ds / (s phi) and T' = int log(s_i / s) / (s phi) ds over
[s_{i+1}, s_i]; the linear part and the noise are unchanged. With phi = s^2 (``original_sde``)
and order 2 this is SDE-DPM-Solver++(2M) with the exact weight h - (1 - e^{-2h}) / 2 (k-diffusion's
``dpmpp_2m_sde`` with ``solver_type="heun"``); with phi = s (the ODE) it is DPM-Solver++'s
Taylor form (h - 1 + e^{-h}, h^2 / 2 - h + 1 - e^{-h}).

``expansion="midpoint"`` keeps the lambda polynomial but takes D over the whole step as its
value at the step's lambda-midpoint, (1 - r)(D_i + h/2 D' + h^2/8 D''): the rule of
DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), which agrees with the exact weight to O(h^3)
(second order) but stays below (1 - r) h / 2 on long steps, where the exact weight
(~ h - 1/q) extrapolates the noisy D history almost to the step's end. With phi = s^2 and
order 2 it is SDE-DPM-Solver++(2M) as k-diffusion's ``dpmpp_2m_sde`` writes it.

``expansion="auto"`` takes the exact lambda weight on flow models; on the others the exact
weight on steps up to ``midpoint_above_h`` in lambda and the midpoint rule on longer ones
(default 0: the midpoint rule on every step; ``ss_er_sde_3m`` uses 0.55). Measured on the
trained and exact models: docs/sweeps.md, ER-SDE's expansion by step length: on the long steps
of a karras schedule at 8-10 calls the midpoint rule is far nearer the data; with 0.55 the
exact weight on the short steps came nearer on simple at 8-20 calls, farther on normal at 8-10
at order 2.

Corrector (``corrector=True``; :mod:`.run`): once D_{i+1} is known, step i is redone with the
polynomial through D_{i+1} and one more stored value than the predictor used (at most a
parabola), in the same expansion, at no extra model call (the predictor-corrector form of
UniPC, Zhao et al. 2023, and SA-Solver, Xue et al. 2023). The correction reweighs D values
only, so the injected noise stays; deterministic orders rise by one, up to 3.

The ``eta`` family replaces phi by s^(1 - eta) phi(s)^eta: 0 is the probability-flow
ODE, 1 the chosen function (ComfyUI PR #15428 extends eta the same way).

Orders with noise. The orders above are the drift's. The weak order (the law of the
samples), computed exactly on Gaussian data, is 2 at order 3 once noise is on: with phi = s^2
(with or without the corrector) from 64 steps on, with sde_5's smaller noise only beyond a few
hundred steps (docs/orders.md; tests/test_convergence.py).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .noise import NoiseSampler
from .quadrature import integrate_log
from .lagrange import lagrange_derivatives
from .params import (CORRECTED_START, NOISE_END, NOISE_START, NOISE_TYPE, S_NOISE, SIGMA_STEPS, STOP_AT_SIGMA_MIN, eta_param,
                     injects_noise)
from .registry import MenuVariant, Param, SamplerSpec, checked, register
from .cfg_pp import CFG_PP, UncondSource
from .run import History, Method, SamplerRun, Solver, StartFix, Variable

__all__ = ["sample_er_sde", "NOISE_SCALE_FUNCTIONS", "noise_scale_function"]


# name -> (phi, power p if phi(s) = s^p else None); the official code's func_type 1..7.
NOISE_SCALE_FUNCTIONS: Dict[str, Tuple[Callable[[np.ndarray], np.ndarray], Optional[float]]] = {
    "ode": (lambda s: s, 1.0),
    "original_sde": (lambda s: s**2, 2.0),
    "sde_1": (lambda s: s * (np.exp(-1.0 / s) + 10.0), None),
    "sde_2": (lambda s: s**1.5, 1.5),
    "sde_3": (lambda s: s**2.5, 2.5),
    "sde_4": (lambda s: s**0.9 * np.log10(1.0 + 100.0 * s**1.5), None),
    "sde_5": (lambda s: s * (np.exp(s**0.3) + 10.0), None),
}
QUADRATURES = ("gauss", "riemann100")
# With expansion="auto" on VE/VP models, how far ahead (in the history's last spacing, a step
# read to its middle) a step may extrapolate the D history before the exact lambda weight is
# kept off the whole schedule (_ERSDE._extrapolates_far): the bound of the 3M entry's long-step
# rule; the hosts' schedules are on either side of it by far but beta (0.67-1.15 at 4-50 steps)
FAR_READ = 1.25
EXPANSIONS = ("sigma", "lambda", "midpoint", "auto")


class _Phi:
    """phi_eta(s) = s^(1 - eta) phi(s)^eta with its two integrals."""

    def __init__(self, name: Union[str, Callable], eta: float, quadrature: str):
        base, power = (name, None) if callable(name) else NOISE_SCALE_FUNCTIONS[name]
        self.eta = eta
        self.base = base
        # phi_0(s) = s whatever phi: the eta = 0 ODE uses the closed form
        self.power = 1.0 if eta == 0.0 else None if power is None else 1.0 + eta * (power - 1.0)
        self.quadrature = quadrature
        # eta = 0 is the probability-flow ODE whatever phi (phi_0(s) = s)
        self.is_ode = self.power == 1.0 or eta == 0.0

    def __call__(self, s):
        s = np.asarray(s, dtype=np.float64)
        if self.power is not None:
            return s**self.power
        return s ** (1.0 - self.eta) * self.base(s) ** self.eta

    def integrals(self, lo: float, hi: float) -> Tuple[float, float]:
        """S = int_lo^hi ds / phi and S' = int_lo^hi (s - hi) / phi ds."""
        S, S1 = self.integrals_many([lo], [hi])
        return float(S[0]), float(S1[0])

    def integrals_many(self, lo: Sequence[float], hi: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`integrals` for every step of a schedule at once (arrays of S and S')."""
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        if lo.size == 0:
            return lo, lo
        if self.quadrature == "gauss" and self.power is None:
            def both(s):
                inv = 1.0 / self(s)
                return np.stack([inv, (s - hi[:, None, None]) * inv])

            S, S1 = integrate_log(both, lo, hi)
            return S, S1
        out = [self._integrals_one(float(a), float(b)) for a, b in zip(lo, hi)]
        return np.array([o[0] for o in out]), np.array([o[1] for o in out])

    def lambda_integrals_many(self, lo: Sequence[float], hi: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """T = int_lo^hi ds / (s phi) and T' = int_lo^hi log(hi / s) / (s phi) ds for every
        step: the integrals of the lambda expansion (closed form for power functions)."""
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        if lo.size == 0:
            return lo, lo
        if self.power is not None:
            # s = hi e^{-u}, u in [0, h]: T = (lo^-q - hi^-q) / q and
            # T' = lo^-q (h / q - 1 / q^2) + hi^-q / q^2, written without e^{qh}
            q, h = self.power, np.log(hi / lo)
            return (lo**-q - hi**-q) / q, lo**-q * (h / q - 1.0 / q**2) + hi**-q / q**2

        def both(s):
            inv = 1.0 / (s * self(s))
            return np.stack([inv, np.log(hi[:, None, None] / s) * inv])

        T, T1 = integrate_log(both, lo, hi)
        return T, T1

    def _integrals_one(self, lo: float, hi: float) -> Tuple[float, float]:
        if self.quadrature == "riemann100":
            ds = (hi - lo) / 100.0
            s = lo + ds * np.arange(100)
            inv = 1.0 / self(s)
            return float(np.sum(inv) * ds), float(np.sum((s - hi) * inv) * ds)
        if self.power is not None:
            q = self.power
            S = math.log(hi / lo) if q == 1.0 else (hi ** (1 - q) - lo ** (1 - q)) / (1 - q)
            first = math.log(hi / lo) if q == 2.0 else (hi ** (2 - q) - lo ** (2 - q)) / (2 - q)
            return S, first - hi * S
        raise AssertionError("non-power gauss integrals go through integrals_many")


def noise_scale_function(name: Union[str, Callable] = "sde_5", eta: float = 1.0) -> Callable:
    """The noise-scale function phi_eta as a NumPy callable (for plots and tests)."""
    return _Phi(name, eta, "gauss")


class _ERSDE(Solver):
    """ER-SDE's per-step coefficients and update. Each step is one precomputed linear
    combination x_{i+1} = cx x_i + sum_j w_j D_{i-j} + noise (the Delta1 / Delta2 terms are
    linear in the D history), with float64 weights from the closed-form or quadrature
    integrals of phi; steps outside the noise window use phi(s) = s (the ODE)."""

    def __init__(self, run: SamplerRun, order: int, phi: _Phi, s_noise: float,
                 noise_sampler: Optional[NoiseSampler], noise_type: str, expansion: str = "sigma",
                 corrector: bool = False, long_step_ratio: float = 0.0, corrector_max_sigma: float = 0.0,
                 midpoint_above_h: float = 0.0):
        super().__init__(run)
        self.order = order
        self.long_step_ratio = long_step_ratio
        # corrector_max_sigma: only the steps that start at or below it (in the VE-equivalent
        # sigma s); at higher noise the model's output at the uncorrected step end (it holds
        # the step's large injected noise) made the correction a loss under strong guidance
        self.corrected = {i for i in run.correctable_steps
                          if corrector_max_sigma <= 0 or run.ve[i] <= corrector_max_sigma} if corrector else set()
        self.in_lambda = expansion in ("lambda", "midpoint", "auto")
        steps = run.solver_steps
        by_length = expansion == "auto" and not run.mt.is_flow  # the form chosen per step
        noisy = {i for i in steps if run.noise_on(i)} if (not phi.is_ode and s_noise != 0) else set()
        self.midpoint = self._midpoint_steps(expansion, by_length, steps, midpoint_above_h, noisy)
        # the steps the long-step rule counts as read to their middle: the midpoint rule's, and
        # when chosen by length the short ones too, whose exact weight reads the history at
        # (h - phi_t T) / (1 - r), 0.5-0.6 h for the menu's phi = s^2 and h up to 0.55
        # (docs/algorithms.md, long steps)
        self.read_half = set(steps) if by_length else self.midpoint
        # the noise window chooses phi per step; s_noise only scales the injected noise
        self.ns = run.noise_sampler(noise_sampler, noise_type) if (not phi.is_ode and s_noise != 0) else None
        ode = _Phi("ode", 0.0, phi.quadrature)
        phis = {i: (phi if run.noise_on(i) else ode) for i in steps}
        integrals = {}
        for f in (phi, ode):
            # the midpoint rule's weights need no integral of phi
            integrals.update({i: (0.0, 0.0) for i in steps if phis[i] is f and i in self.midpoint})
            mine = [i for i in steps if phis[i] is f and i not in self.midpoint]
            many = f.lambda_integrals_many if self.in_lambda else f.integrals_many
            S_all, S1_all = many([run.ve[i + 1] for i in mine], [run.ve[i] for i in mine])
            integrals.update({i: (float(a), float(b)) for i, a, b in zip(mine, S_all, S1_all)})
        # the variable the D history is interpolated in, with du/dv and d2u/dv2 for the
        # expansion variable v (s, or lambda itself)
        if self.in_lambda:
            self.u, self.du, self.ddu = run.lam, [1.0] * len(run.lam), [0.0] * len(run.lam)
        elif run.mt.is_flow:  # u = s / (1 + s) = sigma, alpha = 1 / (1 + s)
            self.u, self.du, self.ddu = run.sigma, [a * a for a in run.alpha], [-2.0 * a ** 3 for a in run.alpha]
        else:
            self.u, self.du, self.ddu = run.ve, [1.0] * len(run.ve), [0.0] * len(run.ve)
        nf = run.noise_factor(s_noise)
        self.start_c1: Optional[float] = None  # the first step's D'(s_0) weight (corrected start)
        self.coef = {i: self._coefficients(i, phis[i], integrals[i],
                                           nf if (phis[i] is phi and self.ns is not None) else None)
                     for i in steps}

    def _coefficients(self, i: int, f: _Phi, integrals: Tuple[float, float], nf: Optional[float]) -> dict:
        run, s = self.run, self.run.ve
        p_s, p_t = float(f(s[i])), float(f(s[i + 1]))
        r = p_t / p_s
        S, S1 = integrals
        a_t = run.alpha[i + 1]
        h = run.lam[i + 1] - run.lam[i]
        order = 1 if (nf is not None and self._long(i)) else self.order
        k = min(order, i + 1)  # warm-up while the history builds
        if i in self.midpoint:
            # D over the step taken as the history polynomial's value at the step's midpoint
            # in lambda, weighed like D_i: (1 - r) (D_i + h/2 D' + h^2/8 D'')
            c1 = a_t * (1.0 - r) * h / 2.0
            c2 = a_t * (1.0 - r) * h * h / 8.0
        elif self.in_lambda:
            # D(lambda) = D_i + (lambda - lambda_i) D' + ...: by parts, the weights are
            # h - phi_t T and h^2 / 2 - phi_t T' (h = lambda_{i+1} - lambda_i)
            c1 = a_t * (h - p_t * S)
            c2 = a_t * (h * h / 2.0 - p_t * S1)
        else:
            ds = s[i + 1] - s[i]
            c1 = a_t * (ds + p_t * S)  # weight of D'(s_i)
            c2 = a_t * (ds * ds / 2.0 + p_t * S1)  # weight of D''(s_i)
        base = a_t * (1.0 - r)  # the weight of D_i in every form
        if f.quadrature == "riemann100":
            w = self._official_terms(i, k, [base], c1, c2 if k >= 3 else 0.0)
        else:
            by_node = self._interpolated(i, [i - j for j in range(k)], base, c1, c2)
            w = [by_node[i - j] for j in range(k)]
        correction = self._correction(i, order, base, c1, c2, w) if i in self.corrected else None
        if i == 0:
            self.start_c1 = c1 * self.du[0] / (self.u[1] - self.u[0])
        return dict(
            cx=a_t / run.alpha[i] * r,
            w=w,
            correction=correction,
            noise=a_t * math.sqrt(max(s[i + 1] ** 2 - (r * s[i]) ** 2, 0.0)) * nf if nf is not None else 0.0,
            bounds=SamplerRun.host_pair(run.sigma[i], run.sigma[i + 1]),
        )

    def _midpoint_steps(self, expansion: str, by_length: bool, steps: Sequence[int], midpoint_above_h: float,
                        noisy: set) -> set:
        """The steps whose D weights take the midpoint rule: every step for ``"midpoint"``;
        for ``"auto"`` on VE/VP models those longer than ``midpoint_above_h`` in half-log-SNR
        (the exact weight extrapolates the noisy D history almost to the end of a long step,
        the midpoint rule to its middle; on short steps the two agree to O(h^3) and the exact
        weight came nearer the data: docs/sweeps.md, ER-SDE's expansion by step length), the
        steps without noise (``noisy``: the steps that inject it; the ODE's midpoint rule was
        its closest form to the converged ODE) and every step of a schedule that extrapolates
        the history far (:meth:`_extrapolates_far`); none on flow models (the exact weight on
        every step, measured there)."""
        if expansion == "midpoint":
            return set(steps)
        if not by_length:
            return set()
        if self._extrapolates_far(steps):
            return set(steps)
        lam = self.run.lam
        return {i for i in steps if i not in noisy or lam[i + 1] - lam[i] > midpoint_above_h}

    def _extrapolates_far(self, steps: Sequence[int]) -> bool:
        """Whether a step of this schedule extrapolates the D history, read to its middle, more
        than :data:`FAR_READ` times the history's last spacing ahead without the long-step rule
        taking it at first order (``long_step_ratio``): of the hosts' schedules the last step of
        ``normal`` (1.5-2.5 spacings at 4-50 steps; A1111's own uniform schedule has its shape)
        under ``ss_er_sde``. On such a schedule ``"auto"`` keeps the midpoint rule on every step:
        the exact weight on its short steps came farther from the data there (patches-eps, 8-10
        calls), nearer on the schedules that read at most 0.81 spacings ahead (``simple``,
        ``sgm_uniform``, ``karras``, ``exponential``; docs/sweeps.md, ER-SDE's expansion by step
        length and the hosts' default schedules)."""
        for i in steps:
            if i < 1:
                continue
            # under "auto" on VE/VP models every step counts as read to its middle (read_half)
            ahead, spacing = self._read_ahead(i, halved=True)
            if ahead > FAR_READ * spacing and not self._long(i, halved=True):
                return True
        return False

    def _interpolated(self, i: int, nodes: List[int], base: float, c1: float, c2: float) -> Dict[int, float]:
        """base D_i + c1 D'(v_i) + c2 D''(v_i) as weights of the D values at the step indices
        ``nodes`` (nodes[0] = i), the derivatives those of the polynomial through them: a
        line through 2 nodes (c2 unused), a parabola through 3.

        The polynomial is taken in the model's own sigma u and differentiated by the chain
        rule (u = s on VE/VP models, the flow sigma on flow models, where s reaches ~1e4 at
        the head and differences in s are useless; lambda itself for the lambda forms)."""
        w = {n: 0.0 for n in nodes}
        w[i] += base
        if len(nodes) >= 2:
            d1, d2 = lagrange_derivatives([self.u[n] for n in nodes])
            g1, g2 = self.du[i], self.ddu[i]
            use2 = len(nodes) >= 3
            for n, a, b in zip(nodes, d1, d2):
                w[n] += c1 * a * g1 + (c2 * (b * g1 * g1 + a * g2) if use2 else 0.0)
        return w

    def _read_ahead(self, i: int, halved: bool) -> Tuple[float, float]:
        """How far step i (i >= 1) reads its D history's polynomial ahead of the newest node,
        in lambda (the whole step, or its half for a form read at the step's middle), and the
        history's last spacing."""
        lam = self.run.lam
        return (lam[i + 1] - lam[i]) * (0.5 if halved else 1.0), lam[i] - lam[i - 1]

    def _long(self, i: int, halved: Optional[bool] = None) -> bool:
        """Whether step i reads its D history's polynomial further ahead of the newest node, in
        lambda, than ``long_step_ratio`` times the history's last spacing (0: never): the end-point
        forms (sigma, lambda) read it over the whole step, the midpoint rule (and the exact weight
        on the short steps of ``"auto"`` on VE/VP models) at the step's middle (``halved``:
        whether it is read to its middle; by default as this solver takes it, ``read_half``)."""
        if self.long_step_ratio <= 0 or i < 1:
            return False
        ahead, spacing = self._read_ahead(i, i in self.read_half if halved is None else halved)
        return ahead > self.long_step_ratio * spacing

    def _correction(self, i: int, order: int, base: float, c1: float, c2: float,
                    predictor: List[float]) -> List[float]:
        """The corrector of step i (whose predictor has order ``order``) as weights of
        [D_{i+1}, D_i, D_{i-1}, D_{i-2}] (the D history when D_{i+1} is known) to add to the
        predicted x_{i+1}: the same step with the polynomial through D_{i+1} and one value
        more than the predictor's (at most a parabola), minus the predictor's weights."""
        kc = min(order + 1, 3, i + 2)
        corrected = self._interpolated(i, [i, i + 1] + [i - j for j in range(1, kc - 1)], base, c1, c2)
        out = [corrected.get(i + 1 - j, 0.0) for j in range(4)]
        for j, w in enumerate(predictor):
            out[j + 1] -= w
        while out and out[-1] == 0.0:
            out.pop()
        return out

    def _official_terms(self, i: int, k: int, w: List[float], c1: float, c2: float) -> List[float]:
        """``w`` (the weight of D_i) extended by the weights of D_i, D_{i-1}, D_{i-2} in
        c1 Delta1_i + c2 Delta2_i, the official code's derivative estimates."""
        if k >= 2:  # backward divided differences in s
            # c1 weighs Delta1 = (D_i - D_{i-1}) / h1 ~ D', c2 weighs Delta2 ~ D''
            s = self.run.ve
            h1 = s[i] - s[i - 1]
            w[0] += c1 / h1
            w.append(-c1 / h1)
            if k >= 3:
                h2 = s[i - 1] - s[i - 2]
                k2 = c2 * 2.0 / (s[i] - s[i - 2])  # Delta2 = k2-scaled (Delta1_i - Delta1_{i-1})
                w[0] += k2 / h1
                w[1] += -k2 / h1 - k2 / h2
                w.append(k2 / h2)
        return w

    def injects(self, i: int) -> bool:
        return self.ns is not None and i in self.coef and self.coef[i]["noise"] > 0

    def corrects(self, i: int) -> bool:
        return i in self.corrected

    def correct(self, i: int, x: torch.Tensor, history: History) -> torch.Tensor:
        w = self.coef[i]["correction"]
        out = torch.add(x, history.denoised[0], alpha=w[0])  # x itself may be a callback's
        for d, c in zip(history.denoised[1:], w[1:]):
            out.add_(d, alpha=c)
        return out

    def start_fix(self) -> Optional[StartFix]:
        # Once D_1 is known, add the first step's missing D' term,
        # D'(s_0) = u'(s_0) (D_1 - D_0) / (u_1 - u_0) (docs/orders.md). The corrector, where
        # on, does this (and more) itself.
        if 0 in self.corrected:
            return None
        fix = self.start_c1
        return lambda x, history: x + (history.denoised[0] - history.denoised[1]) * fix

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor, history: History) -> torch.Tensor:
        c = self.coef[i]
        x = torch.mul(x, c["cx"])
        for d, w in zip(history.denoised, c["w"]):
            x.add_(d, alpha=w)
        if self.ns is not None and c["noise"] > 0:
            x.add_(self.ns(*c["bounds"]), alpha=c["noise"])
        return x


_PARAMS = (
    Param("order", 3, "Solver order (1-3); the first steps warm up.", 1, 3, 1),
    Param("noise_scale_function", "sde_5",
          "phi(s): sde_5 = s(e^{s^0.3}+10) (paper default), ode = s, original_sde = s^2, sde_1..sde_4 the paper's "
          "others (or, called from Python, a NumPy callable).",
          choices=tuple(NOISE_SCALE_FUNCTIONS), allow_callable=True),
    eta_param(what="0 = ODE, 1 = the chosen noise-scale function (phi_eta = s^(1-eta) phi^eta)"),
    S_NOISE,
    Param("quadrature", "gauss", "gauss: exact float64 integrals; riemann100: the official 100-point rule.",
          choices=QUADRATURES),
    NOISE_START, NOISE_END, NOISE_TYPE, STOP_AT_SIGMA_MIN, SIGMA_STEPS, CORRECTED_START, CFG_PP,
    # last: a saved ComfyUI workflow fills widgets by position, so new inputs go at the end
    Param("expansion", "sigma",
          "How the denoiser is extrapolated over a step: sigma (the paper's Taylor in sigma), lambda (Taylor in "
          "half-log-SNR, exact weights) or midpoint (its value at the step's lambda-midpoint, DPM-Solver++(2M)'s "
          "rule: bounded on long steps; second order); auto: lambda on flow models; on others lambda on steps up "
          "to midpoint_above_h and midpoint on longer ones (measured: docs/sweeps.md). With original_sde at order 2, "
          "midpoint is k-diffusion's dpmpp_2m_sde and lambda its heun form.",
          choices=EXPANSIONS),
    Param("corrector", False,
          "Once the model's output at the end of a step is known, redo the step with it (the D history is then "
          "interpolated, not extrapolated; UniPC / SA-Solver's predictor-corrector) at no extra model call; the "
          "noise already injected is kept. Not for quadrature=riemann100."),
    Param("long_step_ratio", 0.0,
          "A noise step that reads its model-output history further ahead (in half-log-SNR) than this many times "
          "the step before it is taken at first order, its corrector through the step's end (a line), instead of "
          "extrapolating the noisy history over it: the lambda and sigma expansions read it over the whole step, "
          "the midpoint rule (and auto on SD-type models) to the step's middle (so it acts on steps twice as "
          "long). The long last step of the normal schedule, the early steps of beta. 0 = off.", 0.0, 100.0, 0.05),
    Param("corrector_max_sigma", 0.0,
          "The corrector redoes only the steps that start at or below this noise level, in SD's sigma (on flow "
          "models sigma / (1 - sigma)); 0 = every step. Under strong guidance the correction of the high-noise "
          "steps costs accuracy (docs/sweeps.md).", 0.0, 1000.0, 0.05),
    Param("midpoint_above_h", 0.55,
          "With expansion=auto on SD-type (not flow) models: steps longer than this in half-log-SNR take the "
          "midpoint rule, shorter ones the exact lambda weight (the two agree on short steps; on long ones the exact "
          "weight extrapolates the noisy model-output history almost to the step's end); on a schedule with a step "
          "that extrapolates the history far (normal's last step) the midpoint rule on every step. 0 = the "
          "midpoint rule on every step; steps without noise take it always; flow models take the exact weight on "
          "every step (docs/sweeps.md).",
          0.0, 100.0, 0.05),
)


@checked(_PARAMS)
@torch.no_grad()
def sample_er_sde(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    order: int = 3, noise_scale_function: Union[str, Callable] = "sde_5", eta: float = 1.0, s_noise: float = 1.0,
    quadrature: str = "gauss", expansion: str = "sigma", noise_sampler: Optional[NoiseSampler] = None, noise_type: str = "gaussian",
    model_type: Any = None, stop_at_sigma_min: bool = False, noise_start: float = 0.0, noise_end: float = 1.0,
    sigma_steps: bool = True, corrected_start: bool = True, cfg_pp: bool = False,
    uncond: Optional[UncondSource] = None, corrector: bool = False, long_step_ratio: float = 0.0,
    corrector_max_sigma: float = 0.0, midpoint_above_h: float = 0.55,
) -> torch.Tensor:
    """ER-SDE-Solver (1 model call per step).

    Args:
        order: 1-3; the first steps warm up (order 1, then 2) while history builds.
        noise_scale_function: ``"sde_5"`` (default, s (e^{s^0.3} + 10)), ``"ode"`` (s),
            ``"original_sde"`` (s^2), ``"sde_1"`` .. ``"sde_4"`` (the paper's others), or a
            NumPy callable.
        eta: 0 = ODE, 1 = the chosen function; phi_eta = s^(1-eta) phi^eta.
        s_noise: scale on the injected noise.
        quadrature: ``"gauss"`` (closed form / Gauss-Legendre, float64, and the third-order
            derivative estimate) or ``"riemann100"`` (the official 100-point rule and the
            official first-order derivative estimate, to reproduce published numbers).
        expansion: ``"sigma"`` (the paper: D expanded in the VE sigma s between steps),
            ``"lambda"`` (in the half-log-SNR lambda = -log s, the exponential-integrator
            form of DPM-Solver++; D(lambda) is smoother where steps are long in s) or
            ``"midpoint"`` (D over the step taken as the history polynomial's value at the
            step's lambda-midpoint, the rule of DPM-Solver++(2M): its weight stays bounded
            on long steps, where the exact lambda weight extrapolates D far ahead; second
            order at any ``order``). Same exact linear part and noise; only the weights of
            the D history change (see the module docstring). With ``"original_sde"`` and
            order 2, ``"midpoint"`` is SDE-DPM-Solver++(2M) (k-diffusion's ``dpmpp_2m_sde``)
            and ``"lambda"`` its exact ("heun") form. ``"auto"`` (the menu entries'): ``"lambda"``
            on flow models; on the others ``"lambda"`` on the steps up to ``midpoint_above_h``
            long in lambda and ``"midpoint"`` on longer ones (docs/sweeps.md).
        noise_start, noise_end: the noise window (fractions of the steps); steps outside
            it use phi(s) = s, the ODE.
        sigma_steps: long deterministic steps near sigma = 0 (and a flow model's final
            step) as Adams-Bashforth steps in sigma (see :mod:`.run`).
        corrected_start: order 3 with a deterministic first step: once D_1 is known, redo
            the first step with it (no extra call; :mod:`.run`); off = the paper's warm-up.
        corrector: once D(x_{i+1}) is known, redo step i with the polynomial through it and
            one more stored value than the predictor used (at most a parabola): the D history
            is interpolated over the step instead of extrapolated. No extra model call (D_{i+1}
            keeps its value at the predicted x_{i+1}), the injected noise is kept; not after
            the last model call. Raises the ODE's order by one up to 3.
        long_step_ratio: a step that injects noise and reads the D history's polynomial
            further ahead of its newest node, in lambda, than this many times the history's
            last spacing (the step before) is taken at first order (its corrector, if on, with
            the line through D_i and D_{i+1}): read far beyond the spacing of the D history,
            the polynomial extrapolates the noise in D far (measured: docs/sweeps.md, ER-SDE on
            long steps). The ``"sigma"`` and ``"lambda"`` expansions read it over the whole
            step, ``"midpoint"`` (and ``"auto"`` on VE/VP models, whose exact steps are short)
            to the step's middle, so there the rule acts on steps twice as long (docs/sweeps.md,
            ER-SDE's long-step rule and the midpoint rule). 0 (default) = never, the paper's
            method.
        corrector_max_sigma: the corrector redoes only the steps that start at a VE-equivalent
            sigma s = sigma / alpha at or below this (on flow models sigma / (1 - sigma));
            0 (default) = every step. The model's output that corrects step i is taken at the
            uncorrected x_{i+1}, which holds the step's injected noise; at high noise and
            under strong guidance the correction it brings is a loss (measured: docs/sweeps.md,
            ER-SDE's corrector at high noise).
        midpoint_above_h: with ``expansion="auto"`` on VE/VP models (not flow), the step
            length in half-log-SNR above which a step takes the midpoint rule instead of the
            exact lambda weight on the steps that inject noise (0: the midpoint rule on every
            step; steps without noise always take it). The default 0.55 leaves karras's long
            late steps at 8-10 steps (h 0.6-1.3) to the midpoint rule and takes simple's,
            sgm_uniform's and karras-at-20's (h 0.2-0.55) exactly: nearer the data on simple
            and sgm_uniform at order 2. On a schedule with a step that extrapolates the
            history more than :data:`FAR_READ` spacings ahead and is not taken at first order
            (normal's last step at ``long_step_ratio`` 3), the midpoint rule on every step:
            there the exact weight came farther at 8-10 calls (measured: docs/sweeps.md,
            ER-SDE's expansion by step length and the hosts' default schedules).
        cfg_pp, uncond: CFG++, as :func:`~seeds_samplers.samplers.seeds.sample_seeds_1`.
        Other arguments as :func:`~seeds_samplers.samplers.seeds.sample_seeds_1`; every
        parameter's range and choices: its ``Param`` (checked at entry).
    """
    phi = _Phi(noise_scale_function, float(eta), quadrature)
    # the corrector raises the order by one (up to 3): the steps in sigma and the final
    # extrapolation use as many stored values
    effective = min(order + 1, 3) if corrector else order
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable,
                     method=Method(order=effective, multistep=True, variable=Variable.LAMBDA, stochastic=not phi.is_ode,
                                   denoised_depth=order + 1 if corrector else order),
                     model_type=model_type, stop_at_sigma_min=stop_at_sigma_min,
                     noise_window=(noise_start, noise_end), sigma_steps=sigma_steps, corrected_start=corrected_start,
                     cfg_pp=cfg_pp, uncond=uncond)
    if expansion != "sigma" and quadrature == "riemann100":
        raise ValueError(f"expansion={expansion!r} needs quadrature='gauss' (riemann100 reproduces the paper's sigma form)")
    if corrector and quadrature == "riemann100":
        raise ValueError("corrector needs quadrature='gauss' (riemann100 reproduces the paper's algorithm, which has none)")
    return run.run(_ERSDE(run, order, phi, s_noise, noise_sampler, noise_type, expansion, corrector,
                          float(long_step_ratio), float(corrector_max_sigma), float(midpoint_above_h)))


register(SamplerSpec(
    id="er_sde", function=sample_er_sde, family="er_sde", title="ER-SDE-Solver",
    summary="Extended-reverse-time SDE solver, orders 1-3, 1 model call per step.",
    params=_PARAMS,
    calls_per_step=1,
    stochastic=lambda p: p["noise_scale_function"] != "ode" and injects_noise(p),
    # the reverse SDE's noise (phi = s^2) on every step, second order in lambda: on VE/VP
    # models the midpoint rule on the long steps (the exact lambda weight extrapolates the noisy
    # D history far on the long steps of karras-type schedules) and the exact weight on the
    # short ones (midpoint_above_h 0.55: nearer the data on simple and sgm_uniform at 8-20
    # calls and on karras at 20), but the midpoint rule throughout on a schedule with a step
    # extrapolated far (normal's last, where the exact weight came farther at 8-10 calls;
    # _ERSDE._extrapolates_far): docs/sweeps.md, ER-SDE's expansion by step length and the
    # hosts' default schedules; the exact weight on
    # flow models (ahead there on the trained and exact flow models), and the corrector (ahead of or level with the
    # uncorrected forms on most trained and exact models). Order 3 overshoots (noisy second
    # differences). Without the corrector these settings are SDE-DPM-Solver++(2M), k-diffusion's /
    # ComfyUI's dpmpp_2m_sde (VE) and dpmpp_2m_sde_heun (flow). docs/sweeps.md, ER-SDE. A noise
    # step that reads the history over 3 times the step before ahead at first order: the
    # history's extrapolation over it carries its noise far. Of the hosts' schedules that is
    # the end of normal alone (4-5 times the step before), on flow models, where the exact weight
    # reads the line over the whole step; the midpoint rule of the SD-type models reads it to the
    # step's middle (2.5 times the step before at most) and keeps it: there the first-order step
    # moved the samples away from the exact mixtures' law at 8-10 calls, and inside the spread
    # from the data on the trained SD-type models (docs/sweeps.md, ER-SDE's
    # long-step rule and the midpoint rule). The milder long steps (the last steps of simple and
    # sgm_uniform, up to 1.67 times the one before at 4-50 steps, beta's second step on
    # SD-type models, 1.3-2.3) and karras / exponential (at most 1.4) are left to the
    # extrapolation: there the first-order step came nearer the SDE's path by a few per cent
    # but moved the samples away from the SDE's law (KID to the data against the converged
    # SDE from the same latents: digits-flow simple, digits-eps beta); docs/sweeps.md, ER-SDE's
    # long-step rule in distribution.
    menu={"noise_scale_function": "original_sde", "expansion": "auto", "order": 2, "corrector": True,
          "long_step_ratio": 3.0},
    variants=(
        # the same with a parabola through the last three D: far ahead on the trained flow model
        # of photo patches, behind on the digits flow model, and on eps models (noisy second
        # differences overshoot); offered beside order 2 as k-diffusion offers dpmpp_3m_sde
        # beside dpmpp_2m_sde (docs/sweeps.md, ER-SDE menu variants)
        # A parabola's extrapolation over a step q times the history's spacing weighs the noisy
        # second difference by about q^2 (a line's first difference by q): first order from
        # 1.25 times the step before read ahead (the whole step on flow models; on SD-type models,
        # midpoint rule, half of it: steps 2.5 times the one before, normal's last alone); as
        # near the path as 2 (and 1.5, where measured) or nearer on every trained model and
        # schedule measured but beta at 8-10 calls; without the rule it loses normal's last step entirely
        # (docs/sweeps.md, ER-SDE on long steps and ER-SDE's long-step rule in distribution)
        MenuVariant("er_sde_3m", "ER-SDE-Solver 3M",
                    "As ss_er_sde at third order (with the corrector): for flow models (SD3, Flux), where it can "
                    "beat ss_er_sde; on SD/SDXL-type models use ss_er_sde.",
                    {"order": 3, "long_step_ratio": 1.25, "midpoint_above_h": 0.55}),
        # the probability-flow ODE (no noise) with the entry's own second-order expansion and
        # corrector: the closest of ER-SDE's ODE forms to the converged ODE on the trained models
        # and under guidance, where third order in lambda overshoots at few steps (it was chosen
        # first by the KID to the data); docs/sweeps.md, ER-SDE's ODE to the converged ODE
        MenuVariant("er_sde_ode", "ER-SDE-Solver ODE",
                    "Deterministic: ss_er_sde without noise, i.e. the probability-flow ODE at second order with "
                    "the corrector, 1 model call per step.",
                    {"noise_scale_function": "ode"}),
    ),
))
