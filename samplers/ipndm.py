"""iPNDM: improved pseudo-numerical methods (Zhang & Chen's DEIS paper, docs/algorithms.md, DEIS).

Adams-Bashforth steps on the probability-flow ODE dx/dsigma = eps, eps = (x - D) / sigma:

    x_{i+1} = x_i + sum_j C_ij eps_{i-j},   1 model call per step.

* ``variant="fixed"`` (iPNDM): C_ij = (sigma_{i+1} - sigma_i) b_j with the constant-step
  Adams-Bashforth weights b = [1], [3, -1]/2, [23, -16, 5]/12, [55, -59, 37, -9]/24.
  They assume equal steps; on a non-uniform sigma grid the weights are off by O(step-size
  ratio - 1), which limits the global order to 2 however high ``order`` is.
* ``variant="variable"`` (variable-step iPNDM, cf. ComfyUI's ipndm_v): the Adams-Bashforth
  weights for the actual non-uniform nodes, C_ij = int_{sigma_i}^{sigma_{i+1}} l_j(sigma)
  dsigma with l_j the Lagrange basis in sigma through sigma_i, sigma_{i-1}, ... (the
  rhoAB-DEIS weights, :func:`~.lagrange.rhoab_coefficients`). On equal steps they reduce to
  the fixed ones; on any smooth grid they keep the full order.

Step i uses min(order, i + 1) nodes (warm-up; no lower-order final, as in the official
code). A final step to sigma = 0 returns the denoised estimate. Flow models are stepped
directly in sigma, where dx/dsigma = (x - D) / sigma is their exact ODE.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import torch

from .lagrange import rhoab_coefficients
from .multistep import MAX_ORDER, Multistep, multistep_orders
from .params import CORRECTED_START, SIGMA_STEPS, STOP_AT_SIGMA_MIN
from .registry import MenuVariant, Param, SamplerSpec, checked, register
from .cfg_pp import CFG_PP, UncondSource
from .run import Method, SamplerRun, Variable

__all__ = ["sample_ipndm", "IPNDM_VARIANTS", "IPNDM_WEIGHTS", "ipndm_coefficients"]

IPNDM_VARIANTS = ("fixed", "variable")
# Constant-step Adams-Bashforth weights (newest first) for 1-4 nodes.
IPNDM_WEIGHTS = (
    (1.0,),
    (3.0 / 2.0, -1.0 / 2.0),
    (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0),
    (55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0),
)


def ipndm_coefficients(nodes: Sequence[float], s0: float, s1: float) -> List[float]:
    """Fixed-weight iPNDM coefficients (sigma_{i+1} - sigma_i) b_j for len(nodes) nodes."""
    return [(s1 - s0) * b for b in IPNDM_WEIGHTS[len(nodes) - 1]]


_PARAMS = (
    Param("order", 4, "Number of eps values per step (1-4); the first steps warm up.", 1, MAX_ORDER, 1),
    Param("variant", "fixed",
          "fixed: constant-step Adams-Bashforth weights (original iPNDM); "
          "variable: weights for the actual step sizes (full order on any schedule).",
          choices=IPNDM_VARIANTS),
    STOP_AT_SIGMA_MIN, SIGMA_STEPS, CORRECTED_START, CFG_PP,
)


@checked(_PARAMS)
@torch.no_grad()
def sample_ipndm(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    order: int = 4, variant: str = "fixed", model_type: Any = None, stop_at_sigma_min: bool = False,
    sigma_steps: bool = True, corrected_start: bool = True, cfg_pp: bool = False,
    uncond: Optional[UncondSource] = None,
) -> torch.Tensor:
    """iPNDM / variable-step iPNDM (1 model call per step).

    Args:
        model, x, sigmas, extra_args, callback, disable: k-diffusion's arguments, as
            :func:`~seeds_samplers.samplers.seeds.sample_seeds_1`.
        order: 1-4, the number of eps values combined per step (= the convergence order
            of the variable-step variant); the first steps warm up.
        variant: ``"fixed"`` (constant-step weights, the original iPNDM) or
            ``"variable"`` (weights for the actual step sizes).
        model_type: override model-type detection (``"ve"`` or ``"flow"``).
        stop_at_sigma_min: with sigmas ending in 0, stop at the last positive sigma and
            return the state there without the final denoise.
        sigma_steps: on flow models, the final step to 0 as a variable-step Adams-Bashforth
            step in sigma instead of x = D (see :mod:`.run`).
        corrected_start: variable variant, order >= 3: redo the Euler first step with the
            trapezoidal rule once eps_1 is known (no extra call; :mod:`.run`); off = iPNDM's
            warm-up.
        cfg_pp, uncond: CFG++, as :func:`~seeds_samplers.samplers.seeds.sample_seeds_1`.

    Every parameter's range and choices: its ``Param`` (checked at entry).
    """
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable,
                     method=Method(order=order, multistep=True, variable=Variable.SIGMA, eps_depth=order),
                     model_type=model_type, stop_at_sigma_min=stop_at_sigma_min, sigma_steps=sigma_steps,
                     corrected_start=corrected_start, cfg_pp=cfg_pp, uncond=uncond)
    weights = ipndm_coefficients if variant == "fixed" else rhoab_coefficients
    orders = multistep_orders(run.n_steps, order, lower_order_final=False)
    # the fixed weights do not integrate over an arbitrary interval: no corrected start there
    return run.run(Multistep(run, orders, weights, correctable=variant == "variable"))


register(SamplerSpec(
    id="ipndm", function=sample_ipndm, family="ipndm", title="iPNDM",
    summary="Improved pseudo-numerical (Adams-Bashforth) multistep solver, orders 1-4, 1 model call per step.",
    params=_PARAMS,
    calls_per_step=1, stochastic=False,
    menu={"order": 3},  # order 3 beats 4 at 5-20 NFE on the benchmark (warm-up, non-uniform steps)
    variants=(
        # under classifier-free guidance a third-order extrapolation overshoots at few steps, and
        # order 2 lands nearest the converged guided ODE (CFG 3: 5 calls; CFG 6: 5-10 calls);
        # at CFG 1 order 3 is ahead from 8 calls on (docs/benchmark.md, the guided limit tables),
        # so both are offered, as k-diffusion offers dpmpp_2m beside higher orders
        MenuVariant("ipndm_2m", "iPNDM 2M",
                    "As ss_ipndm at second order: for guided sampling at few steps (CFG 3: about 5; "
                    "CFG 6 and up: 5-10), where third order overshoots; otherwise use ss_ipndm or ss_deis.",
                    {"order": 2}),
    ),
))
