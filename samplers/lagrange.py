"""Lagrange interpolation weights in closed form (pure Python, float64).

The variable-step Adams-Bashforth weights in sigma: integrating the polynomial through
eps values at ``nodes`` over one step of dx/dsigma = eps (DEIS rhoAB, Zhang & Chen 2023,
Eq. 14 with rho = sigma; iPNDM's variable-step form; the sigma-space steps of
``run.py``).
"""

from __future__ import annotations

from typing import List, Sequence

__all__ = ["poly_from_roots", "rhoab_coefficients", "lagrange_derivatives"]


def poly_from_roots(roots: Sequence[float]) -> List[float]:
    """Ascending coefficients of prod_m (u - roots[m]) (a few multiply-adds)."""
    c = [1.0]
    for r in roots:
        c = [(c[k - 1] if k > 0 else 0.0) - r * (c[k] if k < len(c) else 0.0) for k in range(len(c) + 1)]
    return c


def rhoab_coefficients(nodes: Sequence[float], s0: float, s1: float) -> List[float]:
    """C_j = int_{s0}^{s1} l_j(sigma) dsigma, Lagrange basis in sigma itself: the
    variable-step Adams-Bashforth weights in sigma, in closed form.

    With sigma = s0 + h v (h = s1 - s0) the nodes become v_m = (nodes[m] - s0) / h, which
    are O(1), and C_j = h int_0^1 prod_{m!=j} (v - v_m) / (v_j - v_m) dv exactly.
    """
    h = s1 - s0
    if len(nodes) == 1:
        return [h]
    v = [(s - s0) / h for s in nodes]
    out = []
    for j, vj in enumerate(v):
        others = [vm for m, vm in enumerate(v) if m != j]
        integral = sum(c / (k + 1) for k, c in enumerate(poly_from_roots(others)))
        den = 1.0
        for vm in others:
            den *= vj - vm
        out.append(h * integral / den)
    return out


def lagrange_derivatives(nodes: Sequence[float]) -> tuple:
    """Weights of the first and second derivatives at ``nodes[0]`` of the polynomial
    through values at ``nodes``: P'(u_0) = sum_j d1_j f_j, P''(u_0) = sum_j d2_j f_j.

    In the shifted variable v = u - u_0 each basis polynomial is prod_{m!=j} (v - v_m) /
    prod_{m!=j} (v_j - v_m), whose derivatives at v = 0 are its ascending coefficients
    c_1 and 2 c_2.
    """
    v = [u - nodes[0] for u in nodes]
    d1, d2 = [], []
    for j, vj in enumerate(v):
        others = [vm for m, vm in enumerate(v) if m != j]
        c = poly_from_roots(others) + [0.0, 0.0]
        den = 1.0
        for vm in others:
            den *= vj - vm
        d1.append(c[1] / den)
        d2.append(2.0 * c[2] / den)
    return d1, d2
