"""Monotone maps tau(sigma) from a model's noise level to its own time, for tAB-DEIS.

tAB-DEIS interpolates eps with a polynomial in the model's time variable tau and
integrates it over sigma (docs/algorithms.md, DEIS). The map must come from the model being
sampled, never from constants of one model family:

* VE models with a discrete sigma table (SD-style): the timestep index t, with
  abar_t = 1 / (1 + sigma_t^2) interpolated piecewise-linearly over integer t as DEIS's
  ``DiscreteVPSDE`` does (linear extrapolation beyond the table, so sigma = 0 and
  sigmas above the table still have a finite time).
* Continuous VE models (EDM-style): the time of the linear VP-SDE fitted to the model's
  own sigma range (:func:`~.schedules.fit_vp_betas`), inverted in closed form.
* Flow models: their own time t. A table of shifted sigmas (ComfyUI's discrete-flow and
  Flux samplings, sigma = s t / (1 + (s - 1) t)) gives the smooth closed-form inverse;
  another table its index interpolated linearly in sigma; no table t = sigma
  (unshifted rectified flow).

Every map is a NumPy function of float64 sigmas with the sigmas where it is only
continuous (table entries) listed in ``breakpoints``, so quadratures can split there.
The kinks of a piecewise-linear map cap tAB's accuracy at about 1e-8 (measured on the SD
table), far below the error of any practical step count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .model_types import ModelType, with_range

__all__ = [
    "TimeMap",
    "TAU_MAPS",
    "discrete_vp_time",
    "fitted_vp_time",
    "flow_time",
    "sigma_time",
    "log_sigma_time",
    "model_time",
]

# User-facing choices: "auto" = the model's own time (see module docstring);
# "vp_fit" = the fitted linear VP-SDE over the model's sigma range, for any model.
TAU_MAPS = ("auto", "vp_fit")


@dataclass(frozen=True)
class TimeMap:
    """tau(sigma), increasing in sigma, evaluated in float64.

    Attributes:
        name: what the map is (for messages and tests).
        fn: vectorised map from an array of sigmas >= 0 to times.
        breakpoints: ascending sigmas where the map has a kink (empty if smooth).
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    breakpoints: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __call__(self, sigma) -> np.ndarray:
        return self.fn(np.asarray(sigma, dtype=np.float64))


def _piecewise_linear(xp: np.ndarray, fp: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Linear interpolation through (xp, fp) (xp ascending) with linear extrapolation
    at both ends (np.interp would clamp, making the map non-invertible there)."""

    def f(x: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(xp, x), 1, len(xp) - 1)
        x0, x1, f0, f1 = xp[k - 1], xp[k], fp[k - 1], fp[k]
        return f0 + (x - x0) * (f1 - f0) / (x1 - x0)

    return f


def _as_table(sigma_table: torch.Tensor | Sequence[float]) -> np.ndarray:
    t = np.asarray(
        sigma_table.detach().cpu().to(torch.float64).numpy() if isinstance(sigma_table, torch.Tensor) else sigma_table,
        dtype=np.float64,
    )
    if t.ndim != 1 or len(t) < 2 or not np.all(np.diff(t) > 0) or t[0] < 0:
        raise ValueError("a sigma table must be 1-D, ascending, non-negative, with at least 2 entries")
    return t


def discrete_vp_time(sigma_table: torch.Tensor | Sequence[float]) -> TimeMap:
    """Timestep index of an SD-style table, abar piecewise-linear in t.

    Linear in abar is the same as linear in 1 - abar = sigma^2 / (1 + sigma^2), which is
    what we interpolate: it has no cancellation at small sigma.
    """
    table = _as_table(sigma_table)
    w = table**2 / (1.0 + table**2)
    interp = _piecewise_linear(w, np.arange(len(table), dtype=np.float64))
    return TimeMap("discrete_vp", lambda s: interp(s * s / (1.0 + s * s)), table.copy())


def fitted_vp_time(sigma_min: float, sigma_max: float, eps_s: float = 1e-3) -> TimeMap:
    """Time of the linear VP-SDE with sigma(eps_s) = sigma_min, sigma(1) = sigma_max.

    Inverts log(1 + sigma^2) = beta_d t^2 / 2 + beta_min t, taking the larger root (when
    the fit gives beta_min < 0, as for EDM's 0.002..80, t(0) = -2 beta_min / beta_d > 0),
    in whichever of the two algebraically equal forms has no cancellation.
    """
    if not (0.0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise ValueError(f"the fitted VP time needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    # imported here: schedules imports the registry, which imports the solvers (and us)
    from .schedules import fit_vp_betas

    beta_d, beta_min = fit_vp_betas(sigma_min, sigma_max, eps_s)

    def fn(s: np.ndarray) -> np.ndarray:
        log_term = np.log1p(s * s)
        root = np.sqrt(beta_min * beta_min + 2.0 * beta_d * log_term)
        if beta_min >= 0.0:
            # 2L / (beta_min + root): the two positive terms add
            with np.errstate(invalid="ignore", divide="ignore"):
                out = 2.0 * log_term / (beta_min + root)
            return np.where(log_term == 0.0, 0.0, out)
        return (root - beta_min) / beta_d

    return TimeMap(f"vp_fit(beta_d={beta_d:.6g}, beta_min={beta_min:.6g})", fn)


def _flow_shift(table: np.ndarray) -> Optional[float]:
    """The shift s if ``table[k] = s t / (1 + (s - 1) t)`` at t = (k + 1) / len(table)
    (ComfyUI's discrete flow and Flux samplings; tables may be float32), else None."""
    t = np.arange(1, len(table) + 1, dtype=np.float64) / len(table)
    inner = (table > 0.0) & (table < 1.0) & (t < 1.0)
    if inner.sum() < 2:
        return None
    shift = float(np.median(table[inner] * (1.0 - t[inner]) / (t[inner] * (1.0 - table[inner]))))
    if not (shift > 0.0 and math.isfinite(shift)):
        return None
    fit = shift * t / (1.0 + (shift - 1.0) * t)
    return shift if np.allclose(fit, table, rtol=1e-5, atol=1e-7) else None


def flow_time(sigma_table: Optional[torch.Tensor | Sequence[float]] = None) -> TimeMap:
    """A flow model's own time t in [0, 1].

    A table of shifted sigmas sigma = s t / (1 + (s - 1) t) (the shift and Flux samplings)
    gives the smooth inverse t = sigma / (s - (s - 1) sigma); any other table its index,
    interpolated linearly in sigma; no table t = sigma (unshifted rectified flow).
    """
    if sigma_table is None:
        return sigma_time()
    table = _as_table(sigma_table)
    shift = _flow_shift(table)
    if shift is not None:
        return TimeMap(f"flow_shift({shift:.6g})", lambda s: s / (shift - (shift - 1.0) * s))
    return TimeMap("flow_table", _piecewise_linear(table, np.arange(len(table), dtype=np.float64)), table.copy())


def sigma_time() -> TimeMap:
    """tau = sigma (rhoAB-DEIS; also the time of an unshifted rectified flow)."""
    return TimeMap("sigma", lambda s: s)


def log_sigma_time() -> TimeMap:
    """tau = log sigma (diffusers' log-rho DEIS)."""
    return TimeMap("log_sigma", np.log)


def model_time(mt: ModelType, sigmas: Sequence[float], tau_map: str = "auto") -> TimeMap:
    """The map tAB-DEIS uses for model type ``mt`` (see the module docstring).

    ``sigmas`` (the schedule) supplies the sigma range of a continuous model whose range
    is unknown: its smallest positive and its largest value.
    """
    if tau_map not in TAU_MAPS:
        raise ValueError(f"tau_map must be one of {TAU_MAPS}, got {tau_map!r}")
    if tau_map == "auto":
        if mt.is_flow:
            return flow_time(mt.sigma_table)
        if mt.sigma_table is not None:
            return discrete_vp_time(mt.sigma_table)
    positive = [s for s in sigmas if s > 0.0]
    mt = with_range(mt, min(positive), max(positive))
    return fitted_vp_time(mt.sigma_min, mt.sigma_max)
