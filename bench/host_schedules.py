"""The schedules hosts offer, by their real names, for the benchmark.

ComfyUI's scheduler dropdown defines them over a model's ``model_sampling`` (its ascending
table of the model's discrete sigmas, ``timestep(sigma)`` and ``sigma(timestep)``);
written here from their published definitions, over a
:class:`~seeds_samplers.samplers.model_types.ModelType` that carries the table:

* ``simple``: every (T / n)-th entry of the model's sigma table, from the top
  (``sigmas[-(1 + floor(k T / n))]``, k = 0 .. n-1), then 0.
* ``normal``: n timesteps evenly spaced from ``timestep(sigma_max)`` to
  ``timestep(sigma_min)``, mapped back by ``sigma(t)``, then 0. On SD's discrete models
  this is k-diffusion's discrete schedule (A1111's "Uniform"); on a shifted flow model
  ``timestep(sigma) = 1000 sigma`` while ``sigma(t)`` applies the shift, so it ends
  above sigma_min, as the host's does.
* ``sgm_uniform``: as ``normal`` with n + 1 evenly spaced timesteps, the last dropped.
* ``karras``: Karras et al. (2022) eq. 5, rho = 7, from sigma_max to sigma_min in the
  model's own sigma (for flow models sigma in [0, 1]), then 0.
* ``exponential``: n sigmas evenly spaced in log sigma from sigma_max to sigma_min, then 0.
* ``beta``: timesteps at the quantiles 1, 1 - 1/n, ..., 1/n of a Beta(0.6, 0.6)
  distribution times (T - 1), rounded, repeated ones dropped (Lee et al. 2024, "Beta
  sampling is all you need"), their table sigmas, then 0. Can return fewer than n steps.

Timestep maps: SD-style discrete tables use ``timestep(sigma)`` = index of the nearest
table entry in log sigma and ``sigma(t)`` = log-linear interpolation between table
entries; flow tables of the form ``sigma(t) = s t / (1 + (s - 1) t)`` at t = 1/T .. 1 use
``timestep(sigma) = T sigma`` and ``sigma(t)`` = that shift map at t / T.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List

import torch

from ..samplers.model_types import ModelType

__all__ = ["HOST_SCHEDULES", "host_sigmas", "flow_shift_of", "karras_between"]


def _table(mt: ModelType) -> torch.Tensor:
    if mt.sigma_table is None:
        raise ValueError("host schedules need the model's discrete sigma table (ModelType.sigma_table)")
    return mt.sigma_table.to(torch.float64)


def flow_shift_of(table: torch.Tensor) -> float:
    """The shift s of a flow table sigma_k = s t_k / (1 + (s - 1) t_k), t_k = (k + 1) / T;
    raises ``ValueError`` if the table is not of that form."""
    n = len(table)
    t = torch.arange(1, n + 1, dtype=torch.float64) / n
    k = n // 2
    s_k, t_k = float(table[k]), float(t[k])
    shift = s_k * (1 - t_k) / (t_k * (1 - s_k))
    fit = shift * t / (1 + (shift - 1) * t)
    if float((fit - table).abs().max()) > 1e-5:
        raise ValueError("the flow model's sigma table is not a shifted linear-time table")
    return shift


class _Timesteps:
    """timestep(sigma) and sigma(t) of a model, as the host's model_sampling defines them."""

    def __init__(self, mt: ModelType):
        self.mt = mt
        self.table = _table(mt)
        self.T = len(self.table)
        if mt.is_flow:
            self.shift = flow_shift_of(self.table)

    def timestep(self, sigma: float) -> float:
        if self.mt.is_flow:
            return sigma * self.T
        return float((self.table.log() - math.log(sigma)).abs().argmin())

    def sigma(self, t: float) -> float:
        if self.mt.is_flow:
            u = t / self.T
            return self.shift * u / (1 + (self.shift - 1) * u)
        t = min(max(t, 0.0), self.T - 1.0)
        lo = math.floor(t)
        hi = min(lo + 1, self.T - 1)
        w = t - lo
        log_t = self.table.log()
        return math.exp((1 - w) * float(log_t[lo]) + w * float(log_t[hi]))


def _zero(values: List[float]) -> torch.Tensor:
    return torch.tensor(list(values) + [0.0], dtype=torch.float64)


def _simple(n: int, mt: ModelType) -> torch.Tensor:
    table = _table(mt)
    stride = len(table) / n
    return _zero([float(table[-(1 + int(k * stride))]) for k in range(n)])


def _normal(n: int, mt: ModelType, sgm: bool = False) -> torch.Tensor:
    ts = _Timesteps(mt)
    start, end = ts.timestep(float(ts.table[-1])), ts.timestep(float(ts.table[0]))
    count = n + 1 if sgm else n
    times = [start + (end - start) * k / (count - 1) for k in range(count)] if count > 1 else [start]
    if sgm:
        times = times[:-1]
    return _zero([ts.sigma(t) for t in times])


def karras_between(sigma_max: float, sigma_min: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """``n`` sigmas from ``sigma_max`` down to ``sigma_min`` spaced as Karras et al. (2022)
    eq. 5 (evenly in sigma^(1/rho)), then 0 (float64)."""
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    ramp = [k / (n - 1) for k in range(n)] if n > 1 else [0.0]
    return _zero([(hi + r * (lo - hi)) ** rho for r in ramp])


def _karras(n: int, mt: ModelType) -> torch.Tensor:
    table = _table(mt)
    return karras_between(float(table[-1]), float(table[0]), n)


def _exponential(n: int, mt: ModelType) -> torch.Tensor:
    table = _table(mt)
    a, b = math.log(float(table[-1])), math.log(float(table[0]))
    return _zero([math.exp(a + (b - a) * k / (n - 1)) if n > 1 else math.exp(a) for k in range(n)])


def _beta(n: int, mt: ModelType, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    try:
        from scipy.stats import beta as beta_dist
    except ImportError as e:  # pragma: no cover - scipy comes with the dev/demo extras
        raise ImportError("the beta schedule needs scipy: pip install scipy") from e
    table = _table(mt)
    last = len(table) - 1
    quantiles = [1.0 - k / n for k in range(n)]
    times = [round(float(beta_dist.ppf(q, alpha, beta)) * last) for q in quantiles]
    out, prev = [], None
    for t in times:
        if t != prev:
            out.append(float(table[int(t)]))
        prev = t
    return _zero(out)


HOST_SCHEDULES: Dict[str, Callable[[int, ModelType], torch.Tensor]] = {
    "simple": _simple,
    "normal": _normal,
    "karras": _karras,
    "exponential": _exponential,
    "sgm_uniform": lambda n, mt: _normal(n, mt, sgm=True),
    "beta": _beta,
}


def host_sigmas(name: str, n: int, mt: ModelType) -> torch.Tensor:
    """The host schedule ``name`` with ``n`` steps over model type ``mt`` (float64, ends in 0)."""
    if name not in HOST_SCHEDULES:
        raise ValueError(f"unknown host schedule {name!r}; known: {sorted(HOST_SCHEDULES)}")
    if int(n) != n or n < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {n}")
    return HOST_SCHEDULES[name](int(n), mt)
