"""An exact test model: the ideal denoiser of a Gaussian mixture whose means are real
(32x32 RGB) photographs, in three parameterisations.

Data: x0 ~ sum_k w_k N(mu_k, s_k^2 I). Under x = x0 + sigma eps the noisy marginal is
sum_k w_k N(mu_k, (s_k^2 + sigma^2) I), and the ideal denoiser E[x0 | x] is known in
closed form, so a sampler's output can be compared with the exact distribution.

Parameterisations (``AnalyticDenoiser(kind=...)``):
  * ``"vp_discrete"`` -- SD-like: VE sigma from abar of SD's scaled-linear betas
    (sigma in [0.0292, 14.61]); carries the discrete sigma table.
  * ``"edm"`` -- EDM: sigma in [0.002, 80].
  * ``"flow"`` -- rectified flow (ComfyUI CONST): x = (1 - sigma) x0 + sigma eps,
    sigma in [0, 1], with an optional timestep shift (SD3 uses 3).
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Optional, Sequence

import numpy as np
import torch

from ..samplers.model_types import ModelType
from ..samplers.schedules import sd_sigma_table

__all__ = ["GaussianMixture", "AnalyticDenoiser", "photo_mixture", "KINDS"]

KINDS = ("vp_discrete", "edm", "flow")


class GaussianMixture:
    """Isotropic Gaussian mixture in R^(C x H x W)."""

    def __init__(self, means: torch.Tensor, stds: Sequence[float], weights: Sequence[float]):
        self.means = means.to(torch.float64)
        self.shape = tuple(means.shape[1:])
        self.dim = int(np.prod(self.shape))
        self.stds = torch.as_tensor(stds, dtype=torch.float64)
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.weights = w / w.sum()
        self.k = len(self.weights)
        self._flat = self.means.reshape(self.k, -1)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> tuple:
        """n exact samples and their component labels."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn((n,) + self.shape, generator=generator, dtype=torch.float64)
        x = self.means[comp] + self.stds[comp].view(-1, *[1] * len(self.shape)) * eps
        return x, comp

    def log_resp(self, x: torch.Tensor, extra_var: torch.Tensor) -> torch.Tensor:
        """log p(k | x) for x = x0 + sqrt(extra_var) * eps; extra_var has shape [B]."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        var = self.stds[None, :] ** 2 + extra_var[:, None]  # [B, K]
        # ||x - mu||^2 = ||x||^2 - 2 x.mu + ||mu||^2, batched as a matmul
        d2 = (flat * flat).sum(1, keepdim=True) - 2 * flat @ self._flat.T + (self._flat**2).sum(1)[None]
        logp = self.weights.log()[None] - 0.5 * self.dim * var.log() - 0.5 * d2.clamp_min(0) / var
        return logp - torch.logsumexp(logp, 1, keepdim=True)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Most probable component of each (clean) sample."""
        return self.log_resp(x, torch.zeros(x.shape[0], dtype=torch.float64)).argmax(1)

    def denoise_ve(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x0 | x0 + sigma eps = x] in float64; sigma has shape [B]."""
        sigma = sigma.to(torch.float64)
        var_s = sigma**2
        resp = self.log_resp(x, var_s).exp()  # [B, K]
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        shrink = self.stds[None, :] ** 2 / (self.stds[None, :] ** 2 + var_s[:, None])  # [B, K]
        # sum_k r_k (mu_k + shrink_k (x - mu_k))
        mean_part = (resp * (1 - shrink)) @ self._flat
        out = mean_part + (resp * shrink).sum(1, keepdim=True) * flat
        return out.reshape(x.shape)

    def marginal_std(self, sigma: float) -> float:
        """Per-dimension std of the VE marginal at sigma (for initial noise scaling)."""
        second = float((self.weights * (self.stds**2 + (self._flat**2).mean(1))).sum())
        mean_sq = float(((self.weights[:, None] * self._flat).sum(0) ** 2).mean())
        return math.sqrt(second - mean_sq + sigma**2)


def photo_mixture() -> GaussianMixture:
    """The built-in mixture: 8 photographs (scikit-image sample data, 32x32, in [-1, 1])
    as means, with unequal weights and per-component stds between 0.1 and 0.3."""
    with resources.files(__package__).joinpath("data/gmm_means.npz").open("rb") as f:
        means = torch.from_numpy(np.load(f)["means"].astype(np.float64))
    stds = [0.10, 0.15, 0.20, 0.30, 0.12, 0.25, 0.18, 0.22]
    weights = [0.22, 0.18, 0.15, 0.12, 0.10, 0.09, 0.08, 0.06]
    return GaussianMixture(means, stds, weights)


class AnalyticDenoiser:
    """The exact denoiser ``model(x, sigma) -> E[x0 | x]`` of a mixture, in one of
    :data:`KINDS`. It exposes ``seeds_model_type`` so samplers detect flow models, and
    counts its calls in ``calls``.

    Args:
        mixture: the data distribution (default :func:`photo_mixture`).
        kind: ``"vp_discrete"``, ``"edm"`` or ``"flow"``.
        shift: timestep shift of the flow model's discrete sigmas (1 = none).
        output_dtype: dtype of the returned estimate (None = the input's), to test
            half-precision model outputs.
    """

    def __init__(self, mixture: Optional[GaussianMixture] = None, kind: str = "vp_discrete",
                 shift: float = 1.0, output_dtype: Optional[torch.dtype] = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.mixture = mixture or photo_mixture()
        self.kind = kind
        self.output_dtype = output_dtype
        self.calls = 0
        if kind == "vp_discrete":
            table = sd_sigma_table()
            self.seeds_model_type = ModelType("ve", float(table[0]), float(table[-1]), table)
        elif kind == "edm":
            self.seeds_model_type = ModelType("ve", 0.002, 80.0)
        else:
            t = torch.arange(1, 1001, dtype=torch.float64) / 1000.0
            table = shift * t / (1 + (shift - 1) * t)
            self.seeds_model_type = ModelType("flow", float(table[0]), float(table[-1]), table)
        self.sigma_min = self.seeds_model_type.sigma_min
        self.sigma_max = self.seeds_model_type.sigma_max

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        self.calls += 1
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1).expand(x.shape[0])
        x64 = x.to(torch.float64)
        if self.kind == "flow":
            alpha = (1 - sigma).clamp_min(0)
            safe = alpha.clamp_min(1e-12)
            ve = sigma / safe
            view = (-1,) + (1,) * (x.ndim - 1)
            out = self.mixture.denoise_ve(x64 / safe.view(view), ve)
            # at sigma = 1 the posterior mean is the mixture mean
            mean = (self.mixture.weights[:, None] * self.mixture._flat).sum(0).reshape(x.shape[1:])
            out = torch.where((alpha <= 1e-12).view(view), mean.expand_as(out), out)
        else:
            out = self.mixture.denoise_ve(x64, sigma)
        return out.to(self.output_dtype or x.dtype)

    def prior_sample(self, n: int, sigma_max: float, generator: Optional[torch.Generator] = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Initial latents at ``sigma_max`` as hosts draw them (x = sigma * eps, or pure
        noise eps for flow at sigma = 1; flow below 1 gets the exact noisy marginal)."""
        eps = torch.randn((n,) + self.mixture.shape, generator=generator, dtype=torch.float64)
        if self.kind == "flow":
            if sigma_max >= 1.0:
                return eps.to(dtype)
            x0, _ = self.mixture.sample(n, generator)
            return ((1 - sigma_max) * x0 + sigma_max * eps).to(dtype)
        x0, _ = self.mixture.sample(n, generator)
        return (x0 + sigma_max * eps).to(dtype)
