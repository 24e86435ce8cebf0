"""What every sampler does around its update formula.

:class:`SamplerRun` validates the inputs before any model call, resolves the model type,
computes the schedule in float64 on the host once (sigma, half-log-SNR lambda, alpha,
VE-equivalent sigma), moves sigmas to ``x.device``, and provides the model call, the
progress bar, the per-step callback and the noise sampler. The step loop then only does
tensor arithmetic with Python-float coefficients: no host-device synchronisation.

It also decides, once per call, how each step is taken (:attr:`SamplerRun.mode`):

* ``"solver"``: the solver's own update (in half-log-SNR lambda for SEEDS / ER-SDE);
* ``"sigma"``: a deterministic step deep in the tail (lambda > ``TAIL_LAMBDA``), or in the
  tail (lambda > 0) with a lambda-width above ``tail_h``, or (order-3 solvers on flow
  models, ``head_steps``) in the head below lambda = -``HEAD_LAMBDA``, taken on
  dx/dsigma = (x - D) / sigma in the model's own sigma (Runge-Kutta with the solver's
  number of stages for single-step solvers, variable-step Adams-Bashforth from the stored
  eps history for multistep ones). Near sigma = 0, D is smooth in sigma but not in
  lambda = -log sigma, so lambda-steps there lose the solver's order (docs/sigma_steps.md);
* ``"final_ab"``: on flow models (velocity finite at sigma = 0), the step from the last
  positive sigma to 0 as an Adams-Bashforth step in sigma over the stored eps history at
  no extra model call, instead of the first-order x = D(x, sigma_last): with the solver's
  order when sigma_last is small (lambda above ``FINAL_AB_LAMBDA``), linear (2 values)
  from a longer last step, and x = D from sigma_last >= 0.5. When that step is
  short beside the previous one (a schedule that ends at the model's sigma_min, such as
  *normal*), its length does not shrink with the step count, so it uses one stored value
  more than the solver's order (:meth:`SamplerRun.final_nodes`): an extrapolation over a
  fixed interval from k nodes spaced h apart errs by O(h^(k-1));
* ``"denoise"``: the step to sigma = 0 returns D (VE models: no model below sigma_min).

and which steps inject noise (:meth:`SamplerRun.noise_on`): the noise window
``[noise_start, noise_end)`` as fractions of the steps; outside it a stochastic solver
runs its deterministic (eta = 0) update.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import torch
from tqdm.auto import trange

from .lagrange import rhoab_coefficients
from .model_types import ModelType, resolve_model_type
from .noise import NOISE_TYPES, NoiseSampler, make_noise_sampler

__all__ = ["SamplerRun", "EpsHistory", "check_sigmas", "check_latent", "check_window", "SIGMA_RK",
           "DEFAULT_TAIL_H", "FINAL_AB_LAMBDA",
           "FINAL_LINEAR_LAMBDA", "HEAD_LAMBDA"]

# Which deterministic steps are taken in sigma (measured: docs/sigma_steps.md): every step
# below sigma_ve = e^-TAIL_LAMBDA, and between lambda = 0 and TAIL_LAMBDA those whose
# lambda-width exceeds DEFAULT_TAIL_H. Module attributes, read at each call.
DEFAULT_TAIL_H = 1.0
TAIL_LAMBDA = 2.0
# A flow model's final step to 0 extrapolates the velocity from the stored values over
# [0, sigma_last] (measured: docs/algorithms.md, "Steps in sigma"). With the solver's
# order when lambda at sigma_last is above FINAL_AB_LAMBDA (flow sigma_last below
# 1 / (1 + e) ~ 0.27); from a longer last step (5-8 calls on *simple*) a quadratic
# extrapolation overshoots on sharp data, so it is linear (2 values) down to lambda =
# FINAL_LINEAR_LAMBDA (sigma_last = 0.5), and x = D above that.
FINAL_AB_LAMBDA = 1.0
FINAL_LINEAR_LAMBDA = 0.0
# The head of a flow schedule (sigma -> 1, alpha -> 0): step i has a lambda-width of about
# log((i + 1) / i) whatever the step count, and D moves there like alpha^2 ~ (i / n)^2, so
# lambda-steps err by O(n^-2) in total, whatever their order. Solvers of order 3 opt in
# (``head_steps``) to take the steps that end below lambda = -HEAD_LAMBDA in sigma.
HEAD_LAMBDA = 2.0

# Explicit Runge-Kutta tableaus (c, A, b) without a node at the step's end (usable for a
# step to sigma = 0): Euler; Ralston's 2nd order; Heun's 3rd order.
SIGMA_RK = {
    1: ((0.0,), ((),), (1.0,)),
    2: ((0.0, 2.0 / 3.0), ((), (2.0 / 3.0,)), (0.25, 0.75)),
    3: ((0.0, 1.0 / 3.0, 2.0 / 3.0), ((), (1.0 / 3.0,), (0.0, 2.0 / 3.0)), (0.25, 0.0, 0.75)),
}


def check_sigmas(sigmas: Any) -> List[float]:
    """Validate a schedule and return it as a float64 list (raises ``ValueError``)."""
    if not isinstance(sigmas, torch.Tensor):
        try:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        except Exception as e:  # noqa: BLE001 - reported as a ValueError with the cause
            raise ValueError(f"sigmas must be a 1-D tensor of noise levels ({e})") from None
    if sigmas.ndim != 1:
        raise ValueError(f"sigmas must be 1-D, got shape {tuple(sigmas.shape)}")
    if sigmas.numel() < 2:
        raise ValueError(f"sigmas must have at least 2 values, got {sigmas.numel()}")
    if not sigmas.is_floating_point():
        raise ValueError(f"sigmas must be floating point, got {sigmas.dtype}")
    values = sigmas.detach().to("cpu", torch.float64).tolist()
    for i, s in enumerate(values):
        if not math.isfinite(s):
            raise ValueError(f"sigmas contain NaN or inf (sigmas[{i}] = {s})")
        if s < 0:
            raise ValueError(f"sigmas must be non-negative (sigmas[{i}] = {s})")
    for i in range(len(values) - 1):
        if not values[i + 1] < values[i]:
            raise ValueError(
                f"sigmas must be strictly decreasing (sigmas[{i}] = {values[i]}, "
                f"sigmas[{i + 1}] = {values[i + 1]})"
            )
    return values


def check_window(noise_start: float, noise_end: float) -> None:
    if not (0.0 <= noise_start <= 1.0 and 0.0 <= noise_end <= 1.0):
        raise ValueError(f"noise_start and noise_end must lie in [0, 1], got {noise_start}, {noise_end}")


def check_latent(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have a batch dimension, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf")


class SamplerRun:
    """Shared set-up and bookkeeping of one sampling call.

    Attributes (all float64 Python lists indexed like ``sigmas``):
        sigma: the schedule (a flow model's first sigma of 1 offset as ComfyUI does).
        lam: half-log-SNR lambda = log(alpha / sigma) (+inf at sigma = 0).
        alpha: signal scale (1 for VE, 1 - sigma for flow).
        ve: VE-equivalent sigma / alpha.
    """

    def __init__(
        self,
        model: Callable,
        x: torch.Tensor,
        sigmas: Any,
        extra_args: Optional[dict] = None,
        callback: Optional[Callable] = None,
        disable: Optional[bool] = None,
        *,
        model_type: Any = None,
        stop_at_sigma_min: bool = False,
        stochastic: bool = False,
        noise_window: Tuple[float, float] = (0.0, 1.0),
        sigma_steps: bool = True,
        stages: int = 1,
        tail_h: Optional[float] = None,
        tail_lambda: Optional[float] = None,
        head_steps: bool = False,
    ):
        values = check_sigmas(sigmas)
        check_window(*noise_window)
        check_latent(x)
        self.model = model
        self.extra_args = {} if extra_args is None else extra_args
        self.callback = callback
        self.disable = disable
        self.mt: ModelType = resolve_model_type(model, model_type)
        if self.mt.is_flow and values[0] > 1.0:
            raise ValueError(f"flow-model sigmas must lie in [0, 1] (sigmas[0] = {values[0]})")
        self.sigma = self.mt.prepare_sigmas(values)
        self.lam = [self.mt.half_log_snr(s) for s in self.sigma]
        self.alpha = [self.mt.alpha(s) for s in self.sigma]
        self.ve = [self.mt.ve_sigma(s) for s in self.sigma]

        self.out_dtype = x.dtype
        # Half-precision latents are stepped in float32; float32/64 keep their dtype.
        self.dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        self.device = x.device
        self.sigma_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
        self.s_in = x.new_ones([x.shape[0]], dtype=self.sigma_dtype)
        self.sigma_dev = self.to_device(self.sigma)
        self.ends_at_zero = self.sigma[-1] == 0.0
        self.n_steps = len(self.sigma) - 1 - (1 if (stop_at_sigma_min and self.ends_at_zero) else 0)
        if self.n_steps < 1:
            raise ValueError("stop_at_sigma_min needs at least one step before sigma = 0")
        self.x = x.to(self.dtype)
        self.stochastic = bool(stochastic)
        self.noise_window = tuple(float(v) for v in noise_window)
        self.stages = int(stages)
        self.tail_h = DEFAULT_TAIL_H if tail_h is None else float(tail_h)
        self.tail_lambda = TAIL_LAMBDA if tail_lambda is None else float(tail_lambda)
        self.head_steps = bool(head_steps) and self.mt.is_flow
        self.mode = [self._mode(i, bool(sigma_steps)) for i in range(self.n_steps)]
        # eps values are kept only if an Adams-Bashforth step in sigma will use them
        self.needs_history = "final_ab" in self.mode

    def eps_history(self, depth: int, for_sigma_steps: bool = False) -> "EpsHistory":
        """History for Adams-Bashforth steps in sigma; inactive (no cost) when no step
        uses it. ``for_sigma_steps``: the solver takes its "sigma" steps with it too.
        ``depth``: the solver's order; one more value is kept for a short final step."""
        active = self.needs_history or (for_sigma_steps and "sigma" in self.mode)
        final = self.final_nodes(depth)
        return EpsHistory(max(depth, final), active=active, final_nodes=final)

    def final_nodes(self, k: int) -> int:
        """Stored values the final Adams-Bashforth step to 0 uses for a solver of order k:
        at most 2 from a long last step (lambda at sigma_last up to ``FINAL_AB_LAMBDA``);
        k + 1 when that step is shorter than half the step before it (its length is then
        fixed by the schedule, see the module doc); else k."""
        if "final_ab" not in self.mode or len(self.sigma) < 3:
            return k
        if self.lam[-2] <= FINAL_AB_LAMBDA:
            return min(k, 2)
        last, before = self.sigma[-2], self.sigma[-3] - self.sigma[-2]
        return k + 1 if last < 0.5 * before else k

    def _mode(self, i: int, sigma_steps: bool) -> str:
        if self.is_denoise_step(i):
            extrapolate = sigma_steps and self.mt.is_flow and self.lam[i] > FINAL_LINEAR_LAMBDA
            return "final_ab" if extrapolate else "denoise"
        # In the tail (signal above noise, lambda > 0) D varies like sigma^2 along the
        # solution: a lambda-step errs by about sigma^2 h^(p+1) (h its lambda-width), a
        # sigma-step by dsigma^(p+1). Schedules that reach sigma_min linearly (flow simple)
        # or in one long step (normal) keep h of order 1 however many steps there are, so
        # only sigma-steps keep the order there. The head: see HEAD_LAMBDA.
        lam, h = self.lam[i], self.lam[i + 1] - self.lam[i]
        deep = lam > self.tail_lambda
        long_tail = lam > 0.0 and h > self.tail_h
        head = self.head_steps and self.lam[i + 1] < -HEAD_LAMBDA
        if sigma_steps and (deep or long_tail or head) and not self.noise_on(i):
            return "sigma"
        return "solver"

    def noise_on(self, i: int) -> bool:
        """Whether step i lies in the noise window (a fraction i / n of the steps)."""
        if not self.stochastic:
            return False
        lo, hi = self.noise_window
        f = i / (len(self.sigma) - 1)
        return lo <= f < hi

    # --- host-side helpers -----------------------------------------------------------
    def to_device(self, values: Sequence[float]) -> torch.Tensor:
        """Float64 host values as a tensor on ``x.device`` in the model's sigma dtype."""
        return torch.tensor(list(values), dtype=torch.float64).to(self.device, self.sigma_dtype)

    def is_denoise_step(self, i: int) -> bool:
        """True for a final step to sigma = 0, which returns the denoised estimate."""
        return self.sigma[i + 1] == 0.0

    def stage_sigma(self, i: int, c: float) -> float:
        """Noise level at fraction c of step i in lambda (geometric in the VE sigma)."""
        return self.mt.sigma_at(self.lam[i] + c * (self.lam[i + 1] - self.lam[i]))

    @staticmethod
    def host_pair(a: float, b: float) -> tuple:
        """The (sigma, sigma_next) arguments of a noise sampler, as CPU float64 scalars."""
        return torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)

    def noise_sampler(self, noise_sampler: Optional[NoiseSampler], noise_type: str) -> NoiseSampler:
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
        return make_noise_sampler(self.x, self.extra_args, noise_sampler, noise_type)

    def noise_factor(self, s_noise: float) -> float:
        return float(s_noise) * self.mt.noise_scale

    # --- the step loop ---------------------------------------------------------------
    def steps(self) -> Iterable[int]:
        return trange(self.n_steps, disable=self.disable)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma) with sigma a 0-dim device tensor, in the working dtype."""
        out = self.model(x, sigma * self.s_in, **self.extra_args)
        return out if out.dtype == self.dtype else out.to(self.dtype)

    def report(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        if self.callback is not None:
            s = self.sigma_dev[i]
            self.callback({"x": x, "i": i, "sigma": s, "sigma_hat": s, "denoised": denoised})

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.out_dtype)

    # --- steps in sigma ----------------------------------------------------------------
    def sigma_rk_plan(self, i: int) -> dict:
        """Float64 coefficients of the ``stages``-stage Runge-Kutta step i in sigma."""
        c, A, b = SIGMA_RK[self.stages]
        s0, s1 = self.sigma[i], self.sigma[i + 1]
        h = s1 - s0
        sig = [s0 + ck * h for ck in c]
        return dict(a=[[aij * h for aij in row] for row in A], b=[bj * h for bj in b],
                    inv=[1.0 / v for v in sig], sig=self.to_device(sig))

    def sigma_rk_step(self, x: torch.Tensor, denoised: torch.Tensor, plan: dict) -> torch.Tensor:
        """x + h sum_j b_j k_j with k = (x - D) / sigma at the stages (stages - 1 calls)."""
        ks = [(x - denoised) * plan["inv"][0]]
        for st in range(1, len(plan["b"])):
            x_st = x
            for a, k in zip(plan["a"][st], ks):
                if a != 0.0:
                    x_st = x_st + k * a
            d_st = self.denoise(x_st, plan["sig"][st])
            ks.append((x_st - d_st) * plan["inv"][st])
        for bj, k in zip(plan["b"], ks):
            if bj != 0.0:
                x = x + k * bj
        return x


class EpsHistory:
    """The eps = (x - D) / sigma values of the current deterministic stretch (newest
    first), for Adams-Bashforth steps in sigma. Cleared when noise is injected: values
    from before an injection belong to another trajectory."""

    def __init__(self, depth: int, active: bool = True, final_nodes: Optional[int] = None):
        self.depth = max(1, int(depth)) if active else 0
        self.final_nodes = final_nodes  # values the final step to 0 uses (SamplerRun.final_nodes)
        self.sigmas: List[float] = []
        self.eps: List[torch.Tensor] = []

    def push(self, sigma: float, x: torch.Tensor, denoised: torch.Tensor) -> None:
        if self.depth:
            self.push_eps(sigma, (x - denoised) * (1.0 / sigma))

    def push_eps(self, sigma: float, eps: torch.Tensor) -> None:
        if not self.depth:
            return
        self.sigmas.insert(0, sigma)
        self.eps.insert(0, eps)
        del self.sigmas[self.depth:], self.eps[self.depth:]

    def clear(self) -> None:
        self.sigmas.clear()
        self.eps.clear()

    def ab_step(self, x: torch.Tensor, s0: float, s1: float, nodes: Optional[int] = None) -> torch.Tensor:
        """x + int_{s0}^{s1} P(sigma) dsigma, P through the newest ``nodes`` stored eps
        (all by default; s0 = newest node)."""
        k = len(self.sigmas) if nodes is None else min(nodes, len(self.sigmas))
        for c, e in zip(rhoab_coefficients(self.sigmas[:k], s0, s1), self.eps):
            x = x + e * c
        return x

    def final_step(self, x: torch.Tensor, sigma_last: float) -> torch.Tensor:
        """A flow model's step from ``sigma_last`` to 0 (mode ``"final_ab"``)."""
        return self.ab_step(x, sigma_last, 0.0, self.final_nodes)
