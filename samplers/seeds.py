"""SEEDS-1/2/3: stochastic explicit exponential derivative-free solvers.

Gonzalez et al., NeurIPS 2023 (arXiv 2305.14267); docs/algorithms.md (SEEDS). Restated for the
reverse SDE family  dx = (1 + eta) (x - D) / sigma dsigma + sqrt(2 eta sigma) dW  in
VE-equivalent variables (x / alpha, sigma / alpha), lambda = log(alpha / sigma),
h = lambda_{i+1} - lambda_i and H = (1 + eta) h:

* eta = 1 is the paper's SDE; eta = 0 gives the deterministic exponential integrators
  (SEEDS-2 with r = 1/2 is DPM-Solver++(2S)).
* Data-prediction (default): the linear part is integrated exactly, D enters through
  phi-function weights, and the Ito integral is sampled exactly in distribution.
* Noise-prediction (``prediction="noise"``, §1.4): the same steps written with
  eps = (x - alpha D) / sigma; the paper's Algorithms 2-4. Needs many steps.

Stage noises are the Markov-preserving combination of one independent increment per
sub-interval (:class:`~.noise.StageNoise`), so every stage's noise and the final noise have
the exact variances and cross-covariances of the continuous process.

The step loop, steps in sigma and the final step are :mod:`.run`'s; this module holds the
coefficients and the update formulas.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch

from .noise import NoiseSampler, StageNoise
from .phi import expm1_over, one_minus_exp, psi2
from .cfg_pp import CFG_PP, UncondSource
from .params import COMMON_SDE, eta_param, injects_noise
from .registry import Param, SamplerSpec, checked, register
from .run import History, Method, SamplerRun, Solver, Variable

__all__ = ["sample_seeds_1", "sample_seeds_2", "sample_seeds_3"]


class _Step:
    """Float64 coefficients of one SEEDS step with stage fractions ``cs`` (then 1).

    For each point p (the stages, then the end of the step):
      ``sig[p]``, ``alpha[p]``: noise level and signal scale there;
      ``cx[p]``: weight of x_i; ``cd[p]``: weight of D_i (first-order propagator).
    The weight of each point's second-order term (a difference of model outputs) comes
    from the solver (its tableau row); ``noise`` is the step's Markov-preserving noise.
    """

    def __init__(self, run: SamplerRun, i: int, cs: Sequence[float], eta: float, prediction: str, nf: float):
        mt = run.mt
        s_sig, s_ve, s_alpha = run.sigma[i], run.ve[i], run.alpha[i]
        h = run.lam[i + 1] - run.lam[i]
        self.points = list(cs) + [1.0]
        self.sig = [run.stage_sigma(i, c) for c in cs] + [run.sigma[i + 1]]
        self.alpha = [mt.alpha(s) for s in self.sig]
        self.ve = [mt.ve_sigma(s) for s in self.sig]
        self.h, self.eta = h, eta
        H = (1.0 + eta) * h
        if prediction == "data":
            self.cx = [(sg / s_sig) * math.exp(-eta * c * h) for sg, c in zip(self.sig, self.points)]
            self.cd = [a * one_minus_exp(c * H) for a, c in zip(self.alpha, self.points)]
        else:
            self.cx = [a / s_alpha for a in self.alpha]
            # eps_i enters with (1 + eta) (sigma_ve(p) - sigma_ve(i)); D_i is folded into eps.
            self.cd = [a * (1.0 + eta) * (v - s_ve) for a, v in zip(self.alpha, self.ve)]
        self.noise = self._noise(run, i, eta, prediction, nf) if eta > 0 else None

    def _noise(self, run: SamplerRun, i: int, eta: float, prediction: str, nf: float) -> StageNoise:
        a, b, bounds = [], [], []
        prev_sig, prev_ve, prev_alpha, prev_c = run.sigma[i], run.ve[i], run.alpha[i], 0.0
        for sg, v, al, c in zip(self.sig, self.ve, self.alpha, self.points):
            dc = c - prev_c
            if prediction == "data":
                # OU decay over the sub-interval; fresh variance 1 - e^{-2 eta dc h}
                a.append((sg / prev_sig) * math.exp(-eta * dc * self.h))
                b.append(sg * math.sqrt(one_minus_exp(2.0 * eta * dc * self.h)) * nf)
            else:
                # VE noise-prediction form: plain Brownian increments of variance eta (v0^2 - v1^2)
                a.append(al / prev_alpha)
                b.append(al * math.sqrt(eta * (prev_ve**2 - v**2)) * nf)
            bounds.append(SamplerRun.host_pair(prev_sig, sg))
            prev_sig, prev_ve, prev_alpha, prev_c = sg, v, al, c
        return StageNoise(a, b, bounds)


def _eps(x: torch.Tensor, denoised: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    return (x - denoised * alpha) / sigma


class _Seeds(Solver):
    """What SEEDS-1/2/3 share: the per-step coefficients (:class:`_Step`, eta = 0 outside
    the noise window), the stage sigmas on the device, the model call at a stage, and the
    running Markov-preserving noise of the current step. Subclasses give :meth:`update`,
    the rows of their tableau, from base = D_i (data prediction) or eps_i (noise)."""

    def __init__(self, run: SamplerRun, cs: Sequence[float], eta: float, prediction: str, s_noise: float,
                 noise_sampler: Optional[NoiseSampler], noise_type: str):
        super().__init__(run)
        self.prediction = prediction
        self.ns = run.noise_sampler(noise_sampler, noise_type) if eta > 0 else None
        nf = run.noise_factor(s_noise)
        self.plans = {i: _Step(run, i, cs, eta if run.noise_on(i) else 0.0, prediction, nf)
                      for i in run.solver_steps}
        n = len(cs) + 1
        self.stage_dev = run.to_device(
            [v for i in range(run.n_steps) for v in (self.plans[i].sig if i in self.plans else [0.0] * n)]
        ).view(run.n_steps, n)
        self.noise: Optional[torch.Tensor] = None

    def injects(self, i: int) -> bool:
        return i in self.plans and self.plans[i].noise is not None

    def point(self, x: torch.Tensor, base: torch.Tensor, st: _Step, p: int,
              diff: Optional[torch.Tensor] = None, w: float = 0.0) -> torch.Tensor:
        """cx[p] x + cd[p] base + w (diff - base) + N_p: one row of the tableau."""
        y = torch.mul(x, st.cx[p]).add_(base, alpha=st.cd[p])  # in place: per-call cost
        if diff is not None:
            y.add_(diff - base, alpha=w)
        if st.noise is not None:
            self.noise = st.noise.stage(p, None if p == 0 else self.noise, self.ns)
            y.add_(self.noise)
        return y

    def stage_output(self, y: torch.Tensor, i: int, st: _Step, p: int) -> torch.Tensor:
        """The model output at stage p: D (data prediction) or eps (noise prediction; with
        CFG++ read at the stage's shifted point, i.e. eps_u)."""
        d = self.run.denoise(y, self.stage_dev[i, p])
        if self.prediction == "data":
            return d
        return _eps(self.run.shifted(y, d, st.alpha[p]), d, st.alpha[p], st.sig[p])

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor, history: History) -> torch.Tensor:
        run = self.run
        base = denoised if self.prediction == "data" else _eps(x, denoised, run.alpha[i], run.sigma[i])
        return self.update(i, x, base, self.plans[i])

    def update(self, i: int, x: torch.Tensor, base: torch.Tensor, st: _Step) -> torch.Tensor:
        raise NotImplementedError


class _Seeds1(_Seeds):
    def update(self, i, x, base, st):
        return self.point(x, base, st, 0)  # y_i+1 = E(1) y_i + (1 - e^{-H}) D_i + N_1


class _Seeds2(_Seeds):
    def __init__(self, run: SamplerRun, r: float, variant: str, eta: float, prediction: str, *rest: Any):
        super().__init__(run, (r,), eta, prediction, *rest)
        self.weights = {i: self.final_weight(st, r, variant) for i, st in self.plans.items()}

    def final_weight(self, st: _Step, r: float, variant: str) -> float:
        """w of the final row: tableau 2a (phi_1) or 2b (phi_2)."""
        if self.prediction == "data":
            H = (1.0 + st.eta) * st.h
            return st.alpha[1] * (one_minus_exp(H) / (2 * r) if variant == "phi_1" else psi2(H) / r)
        if variant == "phi_1":
            return st.cd[1] / (2 * r)
        return -st.alpha[1] * (1.0 + st.eta) * st.ve[1] * expm1_over(st.h) / r

    def update(self, i, x, base, st):
        y_r = self.point(x, base, st, 0)                        # stage r
        d_r = self.stage_output(y_r, i, st, 0)
        return self.point(x, base, st, 1, d_r, self.weights[i])  # end of the step


class _Seeds3(_Seeds):
    def __init__(self, run: SamplerRun, r1: float, r2: float, eta: float, prediction: str, *rest: Any):
        super().__init__(run, (r1, r2), eta, prediction, *rest)
        self.weights = {i: (self.weight(st, 1, r1), self.weight(st, 2, r2)) for i, st in self.plans.items()}

    def weight(self, st: _Step, p: int, c_prev: float) -> float:
        """(c / c_prev) psi_2(c H) at point p of fraction c (data prediction)."""
        c = st.points[p]
        if self.prediction == "data":
            return st.alpha[p] * (c / c_prev) * psi2(c * (1.0 + st.eta) * st.h)
        return -st.alpha[p] * (1.0 + st.eta) * st.ve[p] * (c / c_prev) * expm1_over(c * st.h)

    def update(self, i, x, base, st):
        w2, w3 = self.weights[i]
        y1 = self.point(x, base, st, 0)                     # stage r1
        d1 = self.stage_output(y1, i, st, 0)
        y2 = self.point(x, base, st, 1, d1, w2)             # stage r2
        d2 = self.stage_output(y2, i, st, 1)
        return self.point(x, base, st, 2, d2, w3)           # end of the step


def _run(solver: type, model, x, sigmas, extra_args, callback, disable, order: int, settings: tuple, eta: float,
         prediction: str, s_noise: float, noise_sampler, noise_type, model_type, stop_at_sigma_min, noise_start,
         noise_end, sigma_steps, cfg_pp, uncond) -> torch.Tensor:
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable,
                     method=Method(order=order, variable=Variable.LAMBDA, stochastic=eta > 0),
                     model_type=model_type, stop_at_sigma_min=stop_at_sigma_min,
                     noise_window=(noise_start, noise_end), sigma_steps=sigma_steps, cfg_pp=cfg_pp, uncond=uncond)
    return run.run(solver(run, *settings, eta, prediction, s_noise, noise_sampler, noise_type))


_SEEDS1_PARAMS = (eta_param(),) + COMMON_SDE + (CFG_PP,)


@checked(_SEEDS1_PARAMS)
@torch.no_grad()
def sample_seeds_1(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    eta: float = 1.0, s_noise: float = 1.0, prediction: str = "data",
    noise_sampler: Optional[NoiseSampler] = None, noise_type: str = "gaussian", model_type: Any = None,
    stop_at_sigma_min: bool = False, noise_start: float = 0.0, noise_end: float = 1.0, sigma_steps: bool = True,
    cfg_pp: bool = False, uncond: Optional[UncondSource] = None,
) -> torch.Tensor:
    """SEEDS-1 (1 model call per step).

    Data prediction: x_{i+1} = e^{-H} x_i + (1 - e^{-H}) D_i + sigma_{i+1} sqrt(1 - e^{-2 eta h}) xi
    (VE-equivalent form). With eta = 1 this is DDPM-ancestral / SDE-DPM-Solver++-1 and
    ER-SDE-1 with phi(x) = x^2; with eta = 0 it is DDIM.

    Args:
        model: denoiser ``model(x, sigma, **extra_args) -> x0``.
        x: initial latent at ``sigmas[0]``.
        sigmas: decreasing noise levels; a final 0 returns the denoised estimate.
        extra_args: passed to the model; ``extra_args["seed"]`` seeds the noise.
        callback: called once per step with ``{x, i, sigma, sigma_hat, denoised}``.
        disable: disables the tqdm progress bar.
        eta: stochasticity; 0 = deterministic exponential integrator, 1 = the paper's SDE.
        s_noise: scale on the injected noise.
        prediction: ``"data"`` (recommended) or ``"noise"`` (the paper's Algorithm 2).
        noise_sampler: a k-diffusion noise sampler to use instead of the built-in one.
        noise_type: ``"gaussian"`` (per-sample seeded) or ``"brownian"`` (Brownian-consistent).
        model_type: override model-type detection (``"ve"`` or ``"flow"``).
        stop_at_sigma_min: with sigmas ending in 0, stop at the last positive sigma and
            return the state there without the final denoise (how the papers report FID).
        noise_start, noise_end: the noise window, as fractions of the steps: noise is
            injected on step i only if noise_start <= i / n < noise_end; other steps are
            deterministic (eta = 0). (0, 1) = every step, as in the paper.
        sigma_steps: take long deterministic steps near sigma = 0 in sigma, and on flow
            models the final step to 0 as an Adams-Bashforth step (see :mod:`.run`).
        cfg_pp: CFG++ (:mod:`.cfg_pp`): the guided prediction in the data part, the
            unconditional noise carried on; give the CFG scale in [0, 1].
        uncond: where the unconditional prediction of each model call is read (an object
            with ``last_uncond``; default: the model, if it keeps one). Host glue sets it.

    Every parameter's range and choices: its ``Param`` (checked at entry).
    """
    return _run(_Seeds1, model, x, sigmas, extra_args, callback, disable, 1, ((),), eta, prediction, s_noise,
                noise_sampler, noise_type, model_type, stop_at_sigma_min, noise_start, noise_end, sigma_steps,
                cfg_pp, uncond)


_SEEDS2_PARAMS = (eta_param(),
                  Param("r", 0.5, "Fraction of the step (in log-SNR) where the stage is evaluated.", 0.01, 0.99, 0.01),
                  Param("variant", "phi_1", "Final-stage weights: phi_1 (tableau 2a) or phi_2 (tableau 2b).",
                        choices=("phi_1", "phi_2"))) + COMMON_SDE + (CFG_PP,)


@checked(_SEEDS2_PARAMS)
@torch.no_grad()
def sample_seeds_2(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5, variant: str = "phi_1", prediction: str = "data",
    noise_sampler: Optional[NoiseSampler] = None, noise_type: str = "gaussian", model_type: Any = None,
    stop_at_sigma_min: bool = False, noise_start: float = 0.0, noise_end: float = 1.0, sigma_steps: bool = True,
    cfg_pp: bool = False, uncond: Optional[UncondSource] = None,
) -> torch.Tensor:
    """SEEDS-2 (2 model calls per step), stage at fraction ``r`` of the step in lambda.

    In VE-equivalent variables (y = x / alpha, s = sigma / alpha), with E(c) = (s_c / s_i)
    e^{-eta c h} and N_c the Markov-preserving noise up to fraction c:

        y_r   = E(r) y_i + (1 - e^{-r H}) D_i + N_r                          (stage)
        y_i+1 = E(1) y_i + (1 - e^{-H}) D_i + w (D_r - D_i) + N_1            (final)

    with w = (1 - e^{-H}) / (2r) for ``variant="phi_1"`` (paper tableau 2a) or
    w = psi_2(H) / r for ``"phi_2"`` (tableau 2b). With eta = 0 and r = 1/2 this is
    DPM-Solver++(2S). Other arguments as :func:`sample_seeds_1`.
    """
    return _run(_Seeds2, model, x, sigmas, extra_args, callback, disable, 2, (r, variant), eta, prediction,
                s_noise, noise_sampler, noise_type, model_type, stop_at_sigma_min, noise_start, noise_end,
                sigma_steps, cfg_pp, uncond)


_SEEDS3_PARAMS = (eta_param(),
                  Param("r1", 1.0 / 3.0, "Fraction of the step of the first stage.", 0.01, 0.98, 0.01),
                  Param("r2", 2.0 / 3.0, "Fraction of the step of the second stage (> r1).", 0.02, 0.99, 0.01)
                  ) + COMMON_SDE + (CFG_PP,)


@checked(_SEEDS3_PARAMS)
@torch.no_grad()
def sample_seeds_3(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    eta: float = 1.0, s_noise: float = 1.0, r1: float = 1.0 / 3.0, r2: float = 2.0 / 3.0, prediction: str = "data",
    noise_sampler: Optional[NoiseSampler] = None, noise_type: str = "gaussian", model_type: Any = None,
    stop_at_sigma_min: bool = False, noise_start: float = 0.0, noise_end: float = 1.0, sigma_steps: bool = True,
    cfg_pp: bool = False, uncond: Optional[UncondSource] = None,
) -> torch.Tensor:
    """SEEDS-3 (3 model calls per step; paper tableau 3), stages at ``r1`` and ``r2``.

    In the notation of :func:`sample_seeds_2`:

        y_r1  = E(r1) y_i + (1 - e^{-r1 H}) D_i + N_r1
        y_r2  = E(r2) y_i + (1 - e^{-r2 H}) D_i + (r2 / r1) psi_2(r2 H) (D_r1 - D_i) + N_r2
        y_i+1 = E(1) y_i + (1 - e^{-H}) D_i + (1 / r2) psi_2(H) (D_r2 - D_i) + N_1

    (the stage-r2 coefficient is the consistent one, not the official code's). Other
    arguments as :func:`sample_seeds_1`.
    """
    if not r1 < r2:  # the one rule a single Param cannot state
        raise ValueError(f"the stage fractions must satisfy r1 < r2, got r1={r1}, r2={r2}")
    return _run(_Seeds3, model, x, sigmas, extra_args, callback, disable, 3, (r1, r2), eta, prediction,
                s_noise, noise_sampler, noise_type, model_type, stop_at_sigma_min, noise_start, noise_end,
                sigma_steps, cfg_pp, uncond)


register(SamplerSpec(
    id="seeds_1", function=sample_seeds_1, family="seeds", title="SEEDS-1",
    summary="First-order stochastic exponential solver (DDPM-ancestral at eta=1, DDIM at eta=0).",
    params=_SEEDS1_PARAMS, calls_per_step=1, stochastic=injects_noise,
))
register(SamplerSpec(
    id="seeds_2", function=sample_seeds_2, family="seeds", title="SEEDS-2",
    summary="Second-order stochastic exponential solver, 2 model calls per step.",
    params=_SEEDS2_PARAMS, calls_per_step=2, stochastic=injects_noise,
    menu={"variant": "phi_2", "noise_start": 0.2},  # best aggregate rank, digits first (docs/sweeps.md)
))
register(SamplerSpec(
    id="seeds_3", function=sample_seeds_3, family="seeds", title="SEEDS-3",
    summary="Third-order stochastic exponential solver, 3 model calls per step.",
    params=_SEEDS3_PARAMS, calls_per_step=3, stochastic=injects_noise,
))
