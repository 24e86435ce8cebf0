"""Float64 quadrature on the host (coefficients only; never inside the step loop)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Tuple

import numpy as np

__all__ = ["gauss_legendre", "integrate_log"]


@lru_cache(maxsize=8)
def gauss_legendre(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of n-point Gauss-Legendre on [-1, 1]."""
    return np.polynomial.legendre.leggauss(n)


def integrate_log(f: Callable[[np.ndarray], np.ndarray], lo, hi, n: int = 24) -> np.ndarray:
    """Integrals of f(s) ds over [lo_k, hi_k] (0 < lo_k < hi_k), by Gauss-Legendre in u = log s,
    for a batch of intervals at once.

    ``f`` maps an array of s (any shape) to values of shape ``(m,) + s.shape`` or ``s.shape``;
    the result has shape ``(m, K)`` or ``(K,)`` for K intervals. The substitution makes
    integrands like 1 / (s g(s)) smooth; panels of width at most 1 in log s keep the rule
    accurate to float64 round-off for the noise-scale functions used here, however wide
    the step. One vectorised evaluation serves every interval (coefficient set-up stays
    far below the cost of a model call).
    """
    a = np.log(np.atleast_1d(np.asarray(lo, dtype=np.float64)))
    b = np.log(np.atleast_1d(np.asarray(hi, dtype=np.float64)))
    panels = max(1, int(math.ceil(float(np.max(b - a)))))
    t, w = gauss_legendre(n)
    edges = a[:, None] + (b - a)[:, None] * np.linspace(0.0, 1.0, panels + 1)[None, :]
    half = 0.5 * (edges[:, 1:] - edges[:, :-1])  # [K, P]
    mid = 0.5 * (edges[:, 1:] + edges[:, :-1])
    s = np.exp(mid[..., None] + half[..., None] * t)  # [K, P, n]
    values = np.asarray(f(s)) * s * (half[..., None] * w)
    return values.sum(axis=(-1, -2))
