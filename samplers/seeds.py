"""SEEDS-1/2/3: stochastic explicit exponential derivative-free solvers.

Gonzalez et al., NeurIPS 2023 (arXiv 2305.14267); ALGORITHMS.md §1. Restated for the
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

A final step to sigma = 0 returns the denoised estimate (1 model call).
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Sequence

import torch

from .noise import NoiseSampler, StageNoise
from .phi import expm1_over, one_minus_exp, psi2
from .run import SamplerRun

__all__ = ["sample_seeds_1", "sample_seeds_2", "sample_seeds_3"]

PREDICTIONS = ("data", "noise")
SEEDS2_VARIANTS = ("phi_1", "phi_2")


def _check(eta: float, prediction: str, fractions: Sequence[float]) -> None:
    if not eta >= 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    prev = 0.0
    for c in fractions:
        if not prev < c < 1.0:
            raise ValueError(f"stage fractions must satisfy 0 < r1 < r2 < 1, got {list(fractions)}")
        prev = c


class _Step:
    """Float64 coefficients of one SEEDS step with stage fractions ``cs`` (then 1).

    For each point p (the stages, then the end of the step):
      ``sig[p]``, ``alpha[p]``: noise level and signal scale there;
      ``cx[p]``: weight of x_i; ``cd[p]``: weight of D_i (first-order propagator);
      ``w2[p]``: weight of the D- (or eps-) difference of the second-order terms.
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


def _seeds(
    run: SamplerRun,
    cs: Sequence[float],
    eta: float,
    prediction: str,
    nf: float,
    noise_sampler: Optional[NoiseSampler],
    diff_weights: Callable[["_Step", int], float],
    feeds: Sequence[int],
) -> torch.Tensor:
    """The common SEEDS loop.

    ``feeds[p]`` is the index of the earlier stage whose model output enters point p's
    second-order term (-1 for none); ``diff_weights(step, p)`` gives that term's weight.
    """
    plans: List[Optional[_Step]] = [
        None if run.is_denoise_step(i) else _Step(run, i, cs, eta, prediction, nf)
        for i in range(run.n_steps)
    ]
    weights = [None if p is None else [diff_weights(p, k) for k in range(len(p.points))] for p in plans]
    n_points = len(cs) + 1
    stage_dev = run.to_device(
        [s for p in plans for s in (p.sig if p is not None else [0.0] * n_points)]
    ).view(run.n_steps, n_points)
    x = run.x
    for i in run.steps():
        denoised = run.denoise(x, run.sigma_dev[i])
        run.report(i, x, denoised)
        step = plans[i]
        if step is None:
            x = denoised
            continue
        s_dev = stage_dev[i]
        base = denoised if prediction == "data" else _eps(x, denoised, run.alpha[i], run.sigma[i])
        outs = []  # model output (D or eps) at each stage
        noise = None
        for p in range(len(step.points)):
            # in-place accumulation keeps the per-call cost near the noise draw's
            x_p = torch.mul(x, step.cx[p]).add_(base, alpha=step.cd[p])
            if feeds[p] >= 0:
                x_p.add_(outs[feeds[p]] - base, alpha=weights[i][p])
            if step.noise is not None:
                noise = step.noise.stage(p, noise, noise_sampler)
                x_p.add_(noise)
            if p == len(step.points) - 1:
                x = x_p
            else:
                d_p = run.denoise(x_p, s_dev[p])
                outs.append(d_p if prediction == "data" else _eps(x_p, d_p, step.alpha[p], step.sig[p]))
    return run.finish(x)


def _common(model, x, sigmas, extra_args, callback, disable, model_type, stop_at_sigma_min, eta,
            prediction, fractions, noise_sampler, noise_type):
    _check(eta, prediction, fractions)
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable,
                     model_type=model_type, stop_at_sigma_min=stop_at_sigma_min)
    ns = run.noise_sampler(noise_sampler, noise_type) if eta > 0 else None
    return run, ns


@torch.no_grad()
def sample_seeds_1(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None,
    disable: Optional[bool] = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    prediction: str = "data",
    noise_sampler: Optional[NoiseSampler] = None,
    noise_type: str = "gaussian",
    model_type: Any = None,
    stop_at_sigma_min: bool = False,
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
    """
    run, ns = _common(model, x, sigmas, extra_args, callback, disable, model_type, stop_at_sigma_min,
                      eta, prediction, (), noise_sampler, noise_type)
    return _seeds(run, (), eta, prediction, run.noise_factor(s_noise), ns, lambda st, p: 0.0, (-1,))


@torch.no_grad()
def sample_seeds_2(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None,
    disable: Optional[bool] = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
    variant: str = "phi_1",
    prediction: str = "data",
    noise_sampler: Optional[NoiseSampler] = None,
    noise_type: str = "gaussian",
    model_type: Any = None,
    stop_at_sigma_min: bool = False,
) -> torch.Tensor:
    """SEEDS-2 (2 model calls per step), stage at fraction ``r`` of the step in lambda.

    Final stage ``variant="phi_1"`` (paper tableau 2a): D_i + (D_r - D_i) / (2r) under the
    phi_1 weight; ``"phi_2"`` (2b): (1/r) psi_2(H) (D_r - D_i). With eta = 0 and r = 1/2
    this is DPM-Solver++(2S). Other arguments as :func:`sample_seeds_1`.
    """
    if variant not in SEEDS2_VARIANTS:
        raise ValueError(f"variant must be one of {SEEDS2_VARIANTS}, got {variant!r}")
    run, ns = _common(model, x, sigmas, extra_args, callback, disable, model_type, stop_at_sigma_min,
                      eta, prediction, (r,), noise_sampler, noise_type)

    def final_weight(st: _Step, p: int) -> float:
        if p == 0:
            return 0.0
        if prediction == "data":
            H = (1.0 + eta) * st.h
            return st.alpha[1] * (one_minus_exp(H) / (2 * r) if variant == "phi_1" else psi2(H) / r)
        if variant == "phi_1":
            return st.cd[1] / (2 * r)
        return -st.alpha[1] * (1.0 + eta) * st.ve[1] * expm1_over(st.h) / r

    return _seeds(run, (r,), eta, prediction, run.noise_factor(s_noise), ns, final_weight, (-1, 0))


@torch.no_grad()
def sample_seeds_3(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None,
    disable: Optional[bool] = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r1: float = 1.0 / 3.0,
    r2: float = 2.0 / 3.0,
    prediction: str = "data",
    noise_sampler: Optional[NoiseSampler] = None,
    noise_type: str = "gaussian",
    model_type: Any = None,
    stop_at_sigma_min: bool = False,
) -> torch.Tensor:
    """SEEDS-3 (3 model calls per step; paper tableau 3a), stages at ``r1`` and ``r2``.

    Stage r2 uses (r2/r1) psi_2(r2 H) (D_r1 - D_i) (the consistent coefficient, not the
    official code's); the final stage uses (1/r2) psi_2(H) (D_r2 - D_i). Other arguments
    as :func:`sample_seeds_1`.
    """
    run, ns = _common(model, x, sigmas, extra_args, callback, disable, model_type, stop_at_sigma_min,
                      eta, prediction, (r1, r2), noise_sampler, noise_type)
    cs = (r1, r2)

    def weight(st: _Step, p: int) -> float:
        if p == 0:
            return 0.0
        c, c_prev = st.points[p], cs[p - 1]
        if prediction == "data":
            return st.alpha[p] * (c / c_prev) * psi2(c * (1.0 + eta) * st.h)
        return -st.alpha[p] * (1.0 + eta) * st.ve[p] * (c / c_prev) * expm1_over(c * st.h)

    return _seeds(run, cs, eta, prediction, run.noise_factor(s_noise), ns, weight, (-1, 0, 1))
