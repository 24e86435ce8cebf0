"""Parameters that several samplers share, described once (tooltips, ranges)."""

from __future__ import annotations

from typing import Any, Mapping

from .registry import Param

__all__ = ["eta_param", "S_NOISE", "NOISE_TYPE", "PREDICTION", "STOP_AT_SIGMA_MIN", "NOISE_START", "NOISE_END",
           "SIGMA_STEPS", "CORRECTED_START", "COMMON_SDE", "injects_noise"]


def eta_param(default: float = 1.0, maximum: float = 10.0,
              what: str = "0 = deterministic ODE solver, 1 = the paper's SDE") -> Param:
    return Param("eta", default, f"Stochasticity: {what}.", 0.0, maximum, 0.01)


S_NOISE = Param("s_noise", 1.0, "Scale on the injected noise (1 = exact; <1 keeps a little more detail).", 0.0, 2.0, 0.01)
NOISE_TYPE = Param(
    "noise_type", "gaussian",
    "gaussian: per-image seeded noise; brownian: Brownian-consistent noise, so the image changes little with the step count.",
    choices=("gaussian", "brownian"),
)
PREDICTION = Param(
    "prediction", "data",
    "data: data-prediction form (recommended); noise: the paper's noise-prediction algorithms (need many steps).",
    choices=("data", "noise"),
)
STOP_AT_SIGMA_MIN = Param(
    "stop_at_sigma_min", False,
    "Stop at the last positive sigma without the final denoising step (as the papers report FID).",
)
NOISE_START = Param(
    "noise_start", 0.0,
    "Noise window start, as a fraction of the steps (0 = first step): earlier steps are deterministic.",
    0.0, 1.0, 0.01,
)
NOISE_END = Param(
    "noise_end", 1.0,
    "Noise window end, as a fraction of the steps (1 = to the end): steps from here on are deterministic. "
    "Not below noise_start (equal = no noise).",
    0.0, 1.0, 0.01,
)
SIGMA_STEPS = Param(
    "sigma_steps", True,
    "Take long deterministic steps near the end in sigma (keeps full order on 'normal'/'simple' schedules); "
    "on flow models also the first steps of order-3 solvers, and the step to 0 from the stored history "
    "(linear after a long last step); off = every step as in the paper.",
)
CORRECTED_START = Param(
    "corrected_start", True,
    "Multistep, order 3+: once the second model output is known, redo the first (Euler) step with both "
    "(no extra call); the papers' Euler start caps the order at 2. Off = the papers' warm-up.",
)
COMMON_SDE = (S_NOISE, NOISE_START, NOISE_END, NOISE_TYPE, PREDICTION, STOP_AT_SIGMA_MIN, SIGMA_STEPS)


def injects_noise(p: Mapping[str, Any]) -> bool:
    """Stochastic unless eta or s_noise is 0 or the noise window is empty."""
    return p.get("eta", 0) > 0 and p.get("s_noise", 1) > 0 and p.get("noise_start", 0) < p.get("noise_end", 1)
