"""Distances between generated samples and the exact Gaussian-mixture distribution.

Each sample is assigned to its most probable component. Per component k we estimate
the mean m_k and the isotropic variance v_k (mean squared deviation from m_k per
dimension) and compare them with (mu_k, s_k^2); weights are compared by total
variation. The headline number is the per-dimension 2-Wasserstein distance between the
fitted and the true isotropic Gaussians, averaged over components with the true weights:

  W2 = sqrt( sum_k w_k ( ||m_k - mu_k||^2 / d + (sqrt(v_k) - s_k)^2 ) )

The squared mean error is debiased by its sampling variance v_k / n_k (so exact samples
score close to 0 instead of about s / sqrt(n_k)), and v_k uses n_k - 1. The distance
grows with bias and with over- or under-dispersion, and is reported beside the weight
error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import torch

from .gmm import GaussianMixture

__all__ = ["MixtureStats", "mixture_stats"]


@dataclass
class MixtureStats:
    counts: List[int]
    weights: List[float]  # empirical component weights
    mean_err: List[float]  # ||m_k - mu_k|| / sqrt(d)
    std: List[float]  # sqrt(v_k)
    w2: float  # headline distance (see module docstring)
    weight_tv: float  # total variation between empirical and true weights

    def row(self) -> dict:
        return {"W2": self.w2, "weight TV": self.weight_tv}


def mixture_stats(samples: torch.Tensor, mixture: GaussianMixture) -> MixtureStats:
    """Compare samples (n x C x H x W) with ``mixture``; empty components count as their
    full mean distance to the nearest other mean (a missing mode is an error)."""
    x = samples.to(torch.float64).reshape(samples.shape[0], -1)
    if not bool(torch.isfinite(x).all()):
        nan = float("nan")
        k = mixture.k
        return MixtureStats([0] * k, [nan] * k, [nan] * k, [nan] * k, math.inf, 1.0)
    labels = mixture.classify(samples)
    d = mixture.dim
    n = x.shape[0]
    counts, weights, mean_err, std = [], [], [], []
    total = 0.0
    for k in range(mixture.k):
        sel = x[labels == k]
        mu, s, w = mixture._flat[k], float(mixture.stds[k]), float(mixture.weights[k])
        counts.append(int(sel.shape[0]))
        weights.append(sel.shape[0] / n)
        if sel.shape[0] < 2:
            others = torch.cat([mixture._flat[:k], mixture._flat[k + 1:]])
            gap = float(((others - mu) ** 2).sum(1).min() / d)
            mean_err.append(math.sqrt(gap))
            std.append(float("nan"))
            total += w * (gap + s * s)
            continue
        m = sel.mean(0)
        v = float(((sel - m) ** 2).sum() / (d * (sel.shape[0] - 1)))
        me2 = max(float(((m - mu) ** 2).sum() / d) - v / sel.shape[0], 0.0)
        mean_err.append(math.sqrt(me2))
        std.append(math.sqrt(v))
        total += w * (me2 + (math.sqrt(v) - s) ** 2)
    tv = 0.5 * sum(abs(a - float(b)) for a, b in zip(weights, mixture.weights))
    return MixtureStats(counts, weights, mean_err, std, math.sqrt(total), tv)
