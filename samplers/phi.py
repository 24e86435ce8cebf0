"""Exponential-integrator weights, evaluated in float64 without cancellation.

All functions take and return Python floats (coefficients are computed once per
call, on the host, before the step loop starts).
"""

from __future__ import annotations

import math

__all__ = ["one_minus_exp", "psi2", "expm1_over"]


def one_minus_exp(z: float) -> float:
    """1 - e^{-z}, accurate for small z (used as the data weight of an EI step)."""
    if math.isinf(z):
        return 1.0
    return -math.expm1(-z)


def psi2(z: float) -> float:
    """psi_2(z) = (e^{-z} - 1 + z) / z, the second phi-function of data-prediction steps.

    Behaves like z/2 near 0; a Taylor series avoids the cancellation in e^{-z} - 1 + z.
    """
    if abs(z) < 1e-4:
        return z / 2.0 - z * z / 6.0 + z**3 / 24.0
    return (math.expm1(-z) + z) / z


def expm1_over(h: float) -> float:
    """(e^h - 1)/h - 1, the second-order weight of noise-prediction steps (about h/2)."""
    if abs(h) < 1e-4:
        return h / 2.0 + h * h / 6.0 + h**3 / 24.0
    return math.expm1(h) / h - 1.0
