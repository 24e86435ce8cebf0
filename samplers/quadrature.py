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


def integrate_log(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, n: int = 24) -> float:
    """Integral of f(s) ds over [lo, hi] (0 < lo < hi), by Gauss-Legendre in u = log s.

    The substitution makes integrands like 1 / (s * g(s)) smooth; panels of width at
    most 1 in log s keep the rule accurate to float64 round-off for the noise-scale
    functions used here, however wide the step.
    """
    a, b = math.log(lo), math.log(hi)
    panels = max(1, math.ceil(b - a))
    t, w = gauss_legendre(n)
    edges = np.linspace(a, b, panels + 1)
    total = 0.0
    for p0, p1 in zip(edges[:-1], edges[1:]):
        u = 0.5 * (p1 - p0) * t + 0.5 * (p1 + p0)
        s = np.exp(u)
        total += 0.5 * (p1 - p0) * float(np.sum(w * f(s) * s))
    return total
