"""Linear multistep steps on dx/dsigma = eps, the update of DEIS (tAB, rhoAB, log-rho) and
iPNDM (docs/algorithms.md, DEIS):

    x_{i+1} = x_i + sum_j C_ij eps_{i-j},   1 model call per step,

with the weights C_ij of the solver's rule (``weights(nodes, sigma_i, sigma_{i+1})``),
computed in float64 once per call. Step i uses ``orders[i]`` stored values
(:func:`multistep_orders`: warm-up and diffusers' lower-order final). The loop, the steps
in sigma and the final step are :mod:`.run`'s.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch

from .run import History, SamplerRun, Solver, StartFix, redo_first_step

__all__ = ["Multistep", "multistep_orders", "MAX_ORDER", "LOWER_ORDER_FINAL_STEPS", "Weights"]

MAX_ORDER = 4
# Steps below which diffusers lowers the order of the last two steps.
LOWER_ORDER_FINAL_STEPS = 15

Weights = Callable[[Sequence[float], float, float], List[float]]


def multistep_orders(n_steps: int, order: int, lower_order_final: bool) -> List[int]:
    """Nodes used by each step: warm-up min(order, i + 1), and diffusers' lower-order
    final (fewer than 15 steps: last step 1 node, the one before at most 2)."""
    out = [min(order, i + 1) for i in range(n_steps)]
    if lower_order_final and n_steps < LOWER_ORDER_FINAL_STEPS:
        out[-1] = 1
        if n_steps >= 2:
            out[-2] = min(out[-2], 2)
    return out


class Multistep(Solver):
    """The multistep update with the weights of ``weights`` for its own steps.

    Args:
        run: the sampling call.
        orders: stored values per step (:func:`multistep_orders`).
        weights: the rule's C_ij for nodes sigma_i, sigma_{i-1}, ... over [sigma_i, sigma_{i+1}].
        correctable: the rule integrates over any interval, so the corrected start can redo
            the first step with it (not iPNDM's fixed weights).
    """

    def __init__(self, run: SamplerRun, orders: Sequence[int], weights: Weights, correctable: bool = True):
        super().__init__(run)
        self.orders, self.weights, self.correctable = list(orders), weights, correctable
        s = run.sigma
        self.coefs = {i: [float(c) for c in weights([s[i - j] for j in range(self.orders[i])], s[i], s[i + 1])]
                      for i in run.solver_steps}

    def sigma_nodes(self, i: int) -> int:
        return self.orders[i]

    def final_order(self) -> int:
        return max(self.orders)  # the nominal order, not lowered for the last steps

    def start_fix(self) -> Optional[StartFix]:
        if not self.correctable or max(self.orders) < 3:
            return None
        s = self.run.sigma
        return redo_first_step(self.weights([s[1], s[0]], s[0], s[1]), self.coefs[0][0])

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor, history: History) -> torch.Tensor:
        for c, e in zip(self.coefs[i], history.eps):
            x = x + e * c
        return x
