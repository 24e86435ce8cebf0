"""The noise schedules of the two digits models, in the hosts' own terms.

* eps: SD's discrete scaled-linear schedule, 1,000 timesteps, beta 0.00085 -> 0.012
  (``alphas_cumprod``; VE sigma_t = sqrt((1 - abar_t) / abar_t)).
* flow: rectified flow x = (1 - sigma) x0 + sigma eps with SD3's timestep shift,
  sigma(t) = shift t / (1 + (shift - 1) t), fed to the network as timestep 1000 sigma.
"""

from __future__ import annotations

import torch

from ..samplers.schedules import sd_sigma_table

__all__ = ["FLOW_SHIFT", "eps_sigma_table", "flow_sigma", "flow_sigma_table"]

FLOW_SHIFT = 3.0


def eps_sigma_table() -> torch.Tensor:
    """Ascending float64 VE sigmas of the 1,000 discrete timesteps (SD1.5's)."""
    return sd_sigma_table()


def flow_sigma(t: torch.Tensor, shift: float = FLOW_SHIFT) -> torch.Tensor:
    return shift * t / (1 + (shift - 1) * t)


def flow_sigma_table(shift: float = FLOW_SHIFT) -> torch.Tensor:
    """Ascending float64 sigmas at t = 1/1000 .. 1 (ComfyUI's discrete-flow table)."""
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000.0
    return flow_sigma(t, shift)
