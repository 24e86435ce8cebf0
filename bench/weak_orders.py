"""Weak orders without Monte-Carlo noise.

Data x0 ~ N(m, c^2) in one dimension (VE): the denoiser D(x, sigma) = m + c^2 / (c^2 +
sigma^2) (x - m) is linear, so a solver's output is affine in its start x_T and in every
Gaussian it draws: x_out = a0 + A x_T + sum_k B_k xi_k. Running the batch {x_T = 0, no
noise}, {x_T = 1, no noise} and, for each draw k, {x_T = 0, xi_k = 1 on that element
only} gives a0, A and every B_k exactly, hence the exact output distribution
N(a0 + A m_T, A^2 v_T + sum_k B_k^2). Started from the exact marginal N(m, c^2 + sigma_max^2),
the error of the output mean and variance against N(m, c^2 + sigma_min^2) at sigma_min
(``stop_at_sigma_min``) is the weak error for f(x) = x and f(x) = x^2, with no sampling
error at all.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence

import torch

from ..samplers.schedules import logsnr_uniform_sigmas

__all__ = ["GaussianLinearModel", "exact_output_moments", "weak_error", "weak_order"]

F64 = torch.float64


class GaussianLinearModel:
    """The exact denoiser of N(m, c^2) data in VE space."""

    def __init__(self, m: float = 0.7, c: float = 0.5):
        self.m, self.c = m, c

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kw) -> torch.Tensor:
        s2 = sigma.to(F64).reshape(-1, *([1] * (x.ndim - 1))) ** 2
        return self.m + self.c**2 / (self.c**2 + s2) * (x.to(F64) - self.m)


class _BasisNoise:
    """Noise sampler whose k-th draw is 1 on batch element k + 2 and 0 elsewhere."""

    def __init__(self, batch: int):
        self.batch, self.k = batch, 0

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        out = torch.zeros(self.batch, 1, dtype=F64)
        if self.k + 2 >= self.batch:
            raise RuntimeError("more noise draws than basis elements")
        out[self.k + 2] = 1.0
        self.k += 1
        return out


def exact_output_moments(fn: Callable, sigmas: torch.Tensor, model: GaussianLinearModel,
                         max_draws: int, **params) -> tuple:
    """(mean, variance) of ``fn``'s output, started from the exact marginal at sigmas[0]."""
    batch = max_draws + 2
    x = torch.zeros(batch, 1, dtype=F64)
    x[1] = 1.0
    noise = _BasisNoise(batch)
    out = fn(model, x, sigmas, noise_sampler=noise, disable=True, stop_at_sigma_min=True, **params)
    out = out.reshape(batch)
    a0, a = float(out[0]), float(out[1] - out[0])
    b = (out[2:2 + noise.k] - out[0]).tolist()
    var_t = model.c**2 + float(sigmas[0]) ** 2
    return a0 + a * model.m, a * a * var_t + sum(v * v for v in b)


def weak_error(fn: Callable, n: int, model: GaussianLinearModel, s_hi: float = 10.0, s_lo: float = 0.02,
               **params) -> float:
    """|E f(x_out) - E f(x)| for f(x) = x^2 (mean and variance errors combined), n steps
    uniform in lambda from s_hi to s_lo."""
    sig = logsnr_uniform_sigmas(n + 1, s_lo, s_hi)
    sig = torch.cat([sig[:-1], torch.zeros(1, dtype=F64)])  # ... s_lo, 0: stop at s_lo
    mean, var = exact_output_moments(fn, sig, model, max_draws=4 * n + 4, **params)
    true_var = model.c**2 + s_lo**2
    return abs((var + mean * mean) - (true_var + model.m**2))


def weak_order(fn: Callable, ns: Sequence[int], **params) -> Dict[str, List[float]]:
    """Errors at each step count and the least-squares slope of log error vs log n."""
    model = GaussianLinearModel()
    errs = [weak_error(fn, n, model, **params) for n in ns]
    lx = [math.log(n) for n in ns]
    ly = [math.log(e) for e in errs]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = -sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)
    return {"ns": list(ns), "errs": errs, "order": slope}
