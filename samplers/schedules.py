"""Sigma schedules used by the papers, as plain functions returning ``n + 1`` sigmas
(``n`` steps) that end in 0, in float64.

``sigma_min`` / ``sigma_max`` are the model's own noise levels (for flow models in
[0, 1]); pass ``model_type`` where the schedule is defined in half-log-SNR.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from .model_types import ModelType, resolve_model_type
from .registry import SCHEDULES, Param, ScheduleSpec, register_schedule

__all__ = [
    "edm_sigmas",
    "logsnr_uniform_sigmas",
    "vp_time_uniform_sigmas",
    "sd_discrete_sigmas",
    "sd_sigma_table",
    "fit_vp_betas",
    "time_power_sigmas",
    "ScheduleSpec",
    "SCHEDULES",
]


def _check(n: int, sigma_min: float, sigma_max: float) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {n}")
    if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")


def _append_zero(values) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64)
    return torch.cat([t, t.new_zeros(1)])


def edm_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM polynomial schedule (Karras et al. 2022): n sigmas spaced uniformly in sigma^(1/rho)."""
    _check(n, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def logsnr_uniform_sigmas(
    n: int, sigma_min: float, sigma_max: float, model_type: Any = None
) -> torch.Tensor:
    """n sigmas uniform in half-log-SNR lambda = log(alpha / sigma) (log sigma for VE models)."""
    _check(n, sigma_min, sigma_max)
    mt = model_type if isinstance(model_type, ModelType) else resolve_model_type(None, model_type)
    lam0, lam1 = mt.half_log_snr(sigma_max), mt.half_log_snr(sigma_min)
    if n == 1:
        return _append_zero([sigma_max])
    lams = [lam0 + k * (lam1 - lam0) / (n - 1) for k in range(n)]
    return _append_zero([mt.sigma_at(v) for v in lams])


def fit_vp_betas(sigma_min: float, sigma_max: float, eps_s: float = 1e-3) -> tuple:
    """(beta_d, beta_min) of the linear VP-SDE with sigma(eps_s) = sigma_min, sigma(1) = sigma_max.

    sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) (EDM App. / AMED's time_uniform).
    """
    a = math.log(sigma_min**2 + 1.0)
    b = math.log(sigma_max**2 + 1.0)
    beta_d = 2.0 * (b - a / eps_s) / (1.0 - eps_s)
    beta_min = b - beta_d / 2.0
    return beta_d, beta_min


def vp_time_uniform_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 1.0, eps_s: float = 1e-3
) -> torch.Tensor:
    """n sigmas at VP times t_k = (1 + k/(n-1) (eps_s^(1/rho) - 1))^rho of the fitted linear VP-SDE."""
    _check(n, sigma_min, sigma_max)
    beta_d, beta_min = fit_vp_betas(sigma_min, sigma_max, eps_s)
    out = []
    for k in range(n):
        frac = k / (n - 1) if n > 1 else 0.0
        t = (1.0 + frac * (eps_s ** (1 / rho) - 1.0)) ** rho
        out.append(math.sqrt(math.expm1(0.5 * beta_d * t * t + beta_min * t)))
    return _append_zero(out)


def sd_sigma_table(
    beta_start: float = 0.00085, beta_end: float = 0.012, num_timesteps: int = 1000
) -> torch.Tensor:
    """Ascending discrete sigmas of Stable Diffusion's scaled-linear betas.

    sigma_t = sqrt((1 - abar_t) / abar_t) with abar_t = prod_{s<=t} (1 - beta_s) and
    beta = linspace(sqrt(beta_start), sqrt(beta_end))^2.
    """
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    abar = torch.cumprod(1.0 - betas, 0)
    return ((1 - abar) / abar).sqrt()


def sd_discrete_sigmas(n: int, sigma_table: Optional[torch.Tensor] = None) -> torch.Tensor:
    """SD's discrete timestep schedule: n timesteps uniform from the last (999) to 0,
    sigma interpolated linearly in log sigma between table entries (k-diffusion's
    ``DiscreteSchedule.get_sigmas``; A1111's "Uniform")."""
    table = sd_sigma_table() if sigma_table is None else sigma_table.to(torch.float64)
    if int(n) != n or n < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {n}")
    t = torch.linspace(len(table) - 1, 0, n, dtype=torch.float64)
    lo = t.floor().long()
    hi = (lo + 1).clamp(max=len(table) - 1)
    w = t - lo
    log_t = table.log()
    return _append_zero(((1 - w) * log_t[lo] + w * log_t[hi]).exp())


def _table_time_sigmas(table: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Sigmas at fractional indices of an ascending discrete table (log-linear)."""
    lo = times.floor().long().clamp(0, len(table) - 1)
    hi = (lo + 1).clamp(max=len(table) - 1)
    w = times - lo
    log_t = table.to(torch.float64).log()
    return ((1 - w) * log_t[lo] + w * log_t[hi]).exp()


def time_power_sigmas(n: int, model_type: ModelType, kappa: float = 2.0) -> torch.Tensor:
    """DEIS's power-of-time schedule (kappa = 2: "quadratic time") in the model's own time.

    Models with a discrete sigma table use their timestep index t in [0, T-1]:
    t_k = ((T-1)^(1/kappa) (1 - k/(n-1)))^kappa. Continuous models use the linear VP-SDE
    fitted to their sigma range (:func:`vp_time_uniform_sigmas` with rho = kappa).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {n}")
    table = model_type.sigma_table
    if table is not None:
        t_max = float(len(table) - 1)
        frac = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
        times = (t_max ** (1 / kappa) * (1 - frac)) ** kappa
        return _append_zero(_table_time_sigmas(table, times))
    return _on_model(model_type, lambda lo, hi: vp_time_uniform_sigmas(n, lo, hi, rho=kappa))


def _need(v: Optional[float]) -> float:
    if v is None:
        raise ValueError("this schedule needs the model's sigma range; pass a model type with sigma_min/sigma_max")
    return v


# --- the schedules hosts offer (ComfyUI scheduler dropdown, SIGMAS nodes, A1111) -------


def _on_model(mt: ModelType, ve_schedule: Callable[[float, float], torch.Tensor]) -> torch.Tensor:
    """Run a schedule defined on VE sigmas over the model's own range.

    Flow models are mapped through their VE-equivalent sigma / (1 - sigma) (a first sigma
    of 1, where that is infinite, uses the same offset the samplers use) and back; the
    result starts at the model's sigma_max exactly.
    """
    lo, hi = _need(mt.sigma_min), _need(mt.sigma_max)
    top = min(hi, mt.flow_first_sigma) if mt.is_flow else hi
    ve = ve_schedule(mt.ve_sigma(lo), mt.ve_sigma(top))
    out = torch.tensor([mt.sigma_from_ve(v) for v in ve.tolist()], dtype=torch.float64)
    out[0] = hi
    return out


_BUILTIN = (
    ScheduleSpec(
        "logsnr_uniform", "logSNR uniform", "Uniform in half-log-SNR (SEEDS, DPM-Solver).",
        lambda n, mt: _on_model(mt, lambda lo, hi: logsnr_uniform_sigmas(n, lo, hi)),
    ),
    ScheduleSpec(
        "vp_time_uniform", "VP time uniform", "Uniform (rho = 1) or power-spaced VP time of the fitted VP-SDE (AMED-Solver).",
        lambda n, mt, rho: _on_model(mt, lambda lo, hi: vp_time_uniform_sigmas(n, lo, hi, rho=rho)),
        (Param("rho", 1.0, "Time-spacing exponent (1 = uniform in VP time).", 0.5, 10.0, 0.1),),
    ),
    ScheduleSpec(
        "deis_quadratic", "DEIS quadratic time", "Quadratic in the model's own time (DEIS default, kappa = 2).",
        lambda n, mt, kappa: time_power_sigmas(n, mt, kappa),
        (Param("kappa", 2.0, "Time-spacing exponent (2 = quadratic).", 0.5, 10.0, 0.1),),
    ),
    ScheduleSpec(
        "edm_rho", "EDM (rho)", "EDM polynomial over the model's own sigma range (rho = 7 as in the papers).",
        lambda n, mt, rho: _on_model(mt, lambda lo, hi: edm_sigmas(n, lo, hi, rho=rho)),
        (Param("rho", 7.0, "Polynomial exponent (7 in EDM).", 1.0, 20.0, 0.1),),
    ),
)
for _spec in _BUILTIN:
    register_schedule(_spec)
