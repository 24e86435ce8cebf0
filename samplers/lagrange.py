"""Lagrange interpolation weights in closed form (pure Python, float64).

The variable-step Adams-Bashforth weights in sigma: integrating the polynomial through
eps values at ``nodes`` over one step of dx/dsigma = eps (DEIS rhoAB, Zhang & Chen 2023,
Eq. 14 with rho = sigma; iPNDM's variable-step form; the sigma-space steps of
``run.py``).
"""

from __future__ import annotations

from typing import List, Sequence

__all__ = ["poly_from_roots", "rhoab_coefficients"]


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
