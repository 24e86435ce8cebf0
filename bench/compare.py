"""Side-by-side runs of the pack's solvers and k-diffusion's on the exact test model.

A :class:`Contender` is one solver configuration with its cost model (model calls for a
given number of sigma intervals). :func:`quality_table` runs every contender at each
NFE budget from the same initial latents and noise seed and measures the distance of
its samples to the exact mixture (:mod:`.metrics`), plus, for deterministic ones, the
error against a converged reference solve of the probability-flow ODE.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch

from ..samplers import registry
from ..samplers.model_types import ModelType, resolve_model_type
from ..samplers.noise import BrownianNoise
from ..samplers.schedules import SCHEDULES
from .gmm import AnalyticDenoiser
from .host_schedules import HOST_SCHEDULES, host_sigmas
from .metrics import mixture_stats

__all__ = ["Contender", "ours", "kdiffusion", "schedule_for", "sigma_reference_solve", "run_at_budget", "quality_table",
           "reference_solve", "BatchNoise", "PathNoise", "NOISES", "path_version"]


class BatchNoise:
    """Plain batched N(0, I) noise from one generator, used for every stochastic solver in
    the quality benchmark so all of them get the same kind of noise and run fast on large
    batches (the per-image seeding of the pack's default noise changes reproducibility,
    not the distribution)."""

    def __init__(self, x: torch.Tensor, seed: int):
        self.g = torch.Generator(device=x.device).manual_seed(seed)
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.g, dtype=self.dtype, device=self.device)


class PathNoise:
    """One Brownian path per sample, the same whatever steps read it: the increments of the
    pack's Brownian tree (:class:`~seeds_samplers.samplers.noise.BrownianNoise`, W in
    log sigma, a pure function of the seed), one tree for the whole batch. Two samplers
    given ``PathNoise(x, s)`` are driven by the same paths, so their samples can be compared
    per sample (bench/limits.py, the pathwise yardstick). A step to sigma = 0 reads the
    path's increment down to the tree's lowest sigma (as the tree itself does)."""

    def __init__(self, x: torch.Tensor, seed: int):
        self.tree = BrownianNoise(x.unsqueeze(0), [seed])  # the batch as one "sample" of the tree

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        return self.tree(sigma, sigma_next)[0]


class InterpolatedPathNoise:
    """The Brownian paths of :class:`PathNoise` known only at ``nodes`` (a solver's own
    sigmas): each path replaced by its linear interpolation in log sigma between them (the
    path's conditional mean given its values there). A fine solve driven by it is what a
    solver could reach that reads the path only through its increments between ``nodes``:
    :meth:`.limits.Yardstick.between_steps`. Use :meth:`factory` as a :data:`NOISES` entry."""

    def __init__(self, x: torch.Tensor, seed: int, nodes: Sequence[float]):
        self.path = PathNoise(x, seed)
        self.nodes = [float(s) for s in nodes]
        self.u = [self._u(s) for s in self.nodes]
        self.increments: Dict[int, torch.Tensor] = {}

    @staticmethod
    def _u(sigma: float) -> float:
        # the tree's time; sigma = 0 reads its lowest point (as PathNoise does)
        return max(math.log(sigma), BrownianNoise.U_MIN) if sigma > 0 else BrownianNoise.U_MIN

    @classmethod
    def factory(cls, nodes: Sequence[float]) -> Callable[[torch.Tensor, int], "InterpolatedPathNoise"]:
        return lambda x, seed: cls(x, seed, nodes)

    def _increment(self, j: int) -> torch.Tensor:
        """W(u_{j+1}) - W(u_j) over the nodes' interval j."""
        if j not in self.increments:
            du = abs(self.u[j + 1] - self.u[j])
            self.increments[j] = self.path(self.nodes[j], self.nodes[j + 1]) * math.sqrt(du)
        return self.increments[j]

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        ua, ub = self._u(float(sigma)), self._u(float(sigma_next))
        total = None
        for j in range(len(self.u) - 1):
            hi, lo = self.u[j], self.u[j + 1]  # the nodes run down in sigma
            a, b = min(ua, hi), max(ub, lo)  # the query's part inside interval j
            if a > b:
                part = self._increment(j) * ((b - a) / (lo - hi))
                total = part if total is None else total + part
        if total is None:
            raise ValueError(f"the interval ({float(sigma):g}, {float(sigma_next):g}) lies outside the nodes "
                             f"({self.nodes[0]:g} .. {self.nodes[-1]:g})")
        return total / math.sqrt(abs(ub - ua))


@lru_cache(maxsize=None)
def path_version() -> str:
    """The code that draws the Brownian paths (the pack's tree and :class:`PathNoise`) as a
    hash: the path tables' scores and limits record it in their cache keys. Every row of such
    a table is driven by these paths, but a row's key otherwise records only its solver's
    code (an anchor's source file; what a sampler of ours computes under Gaussian noise), so a
    change to the tree alone would leave stale path scores in the cache."""
    from ..samplers import noise

    text = inspect.getsource(noise) + inspect.getsource(PathNoise)
    return "path:" + hashlib.sha1(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=None)
def interpolation_version() -> str:
    """:class:`InterpolatedPathNoise`'s code as a hash, for the cache keys of its solves."""
    return "interp:" + hashlib.sha1(inspect.getsource(InterpolatedPathNoise).encode()).hexdigest()[:16]


# the noises a stochastic contender can be driven by (:meth:`Contender.__call__`)
NOISES = {"gaussian": BatchNoise, "path": PathNoise}


@dataclass
class Contender:
    """One solver configuration.

    ``stages``: model calls per interval; ``final_call``: the final interval to sigma=0
    costs 1 call (x = D) instead of ``stages``; ``warmup_calls``: extra calls, e.g. Heun
    whose last step is an Euler step.
    """

    label: str
    fn: Callable
    params: Dict[str, Any] = field(default_factory=dict)
    stages: int = 1
    final_call: bool = True
    stochastic: bool = False
    source: str = "ours"
    takes_seed_args: bool = True
    # ours: the menu entry this is a configuration of (its settings updated by ``params``), so
    # that the bench can tell which SDE a sweep's configuration discretises (bench/limits.py)
    entry: Optional[registry.SamplerSpec] = None

    def calls(self, intervals: int) -> int:
        if self.final_call:
            return self.stages * (intervals - 1) + 1
        return self.stages * intervals

    def intervals_for(self, nfe: int) -> int:
        """Largest number of sigma intervals whose cost fits the budget (at least 1)."""
        n = 1
        while self.calls(n + 1) <= nfe:
            n += 1
        return n

    def __call__(self, model, x, sigmas, seed: int, noise: Union[str, Callable] = "gaussian") -> torch.Tensor:
        """The contender's samples from ``x``; a stochastic one draws ``noise`` (a name in
        :data:`NOISES`, or such a class: called with ``x`` and the seed) of seed ``seed``."""
        kw = dict(self.params)
        if self.stochastic:
            kw["noise_sampler"] = (NOISES[noise] if isinstance(noise, str) else noise)(x, seed)
        return self.fn(model, x.clone(), sigmas, disable=True, **kw)


def ours(spec: Union[str, registry.SamplerSpec], label: Optional[str] = None, **params: Any) -> Contender:
    """A menu entry of ours (a registered sampler's id, or a spec such as a menu variant's) at
    its menu settings updated by ``params``."""
    spec = registry.get(spec) if isinstance(spec, str) else spec
    p = {**spec.menu, **params}
    return Contender(label or spec.title, spec.function, p, stages=spec.calls(**p),
                     stochastic=spec.is_stochastic(**p), source="ours", entry=spec)


KDIFF_STOCHASTIC = ("dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde")


def import_kdiffusion():
    """``k_diffusion.sampling``, without the deprecation warning its clip dependency prints."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import k_diffusion.sampling as K
    return K


def kdiffusion(name: str, **params: Any) -> Contender:
    """A k-diffusion sampler; SDE ones get :class:`BatchNoise` instead of torchsde's tree."""
    K = import_kdiffusion()

    fn = getattr(K, "sample_" + name)
    stages = {"heun": 2, "dpmpp_2s_ancestral": 2, "dpm_2": 2, "dpmpp_sde": 2}.get(name, 1)
    stochastic = name in KDIFF_STOCHASTIC
    return Contender(name, fn, params, stages=stages, stochastic=stochastic, source="k-diffusion")


def schedule_for(model: Any, intervals: int, schedule: str = "edm_rho") -> torch.Tensor:
    """``intervals`` + 1 sigmas ending in 0 over the model's own range: a host schedule by
    its ComfyUI name (:mod:`.host_schedules`: simple, normal, karras, exponential,
    sgm_uniform, beta) or a schedule id of the package's registry (edm_rho, ...)."""
    mt = resolve_model_type(getattr(model, "denoiser", model))
    if schedule in HOST_SCHEDULES:
        return host_sigmas(schedule, intervals, mt)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; host schedules {sorted(HOST_SCHEDULES)}, "
                         f"registry schedules {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](intervals, mt)


def run_at_budget(c: Contender, model: AnalyticDenoiser, x: torch.Tensor, nfe: int,
                  schedule: str, seed: int) -> tuple:
    """(samples, measured model calls) of contender ``c`` within ``nfe`` calls."""
    sig = schedule_for(model, c.intervals_for(nfe), schedule)
    before = model.calls
    out = c(model, x, sig, seed)
    return out, model.calls - before


def rk4(f: Callable[[torch.Tensor, float], torch.Tensor], y: torch.Tensor, t: float, h: float,
        steps: int) -> torch.Tensor:
    """``steps`` classical Runge-Kutta 4 steps of width ``h`` of dy/dt = f(y, t) from (y, t)."""
    for _ in range(steps):
        k1 = f(y, t)
        k2 = f(y + 0.5 * h * k1, t + 0.5 * h)
        k3 = f(y + 0.5 * h * k2, t + 0.5 * h)
        k4 = f(y + h * k3, t + h)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        t += h
    return y


def reference_solve(model: Any, x: torch.Tensor, sigmas_end: float, sigma_start: float,
                    steps: int = 400, model_type: Optional[ModelType] = None) -> torch.Tensor:
    """The probability-flow ODE solved to convergence (classical RK4 in half-log-SNR on the
    VE-equivalent variables, float64) from ``sigma_start`` to ``sigmas_end`` (> 0).
    ``model_type``: how ``model`` parameterises x (default: resolved from the model)."""
    mt: ModelType = model_type or resolve_model_type(model)
    lam0, lam1 = mt.half_log_snr(sigma_start), mt.half_log_snr(sigmas_end)
    y = x.to(torch.float64) / mt.alpha(sigma_start)  # VE-equivalent state
    h = (lam1 - lam0) / steps

    def f(y, lam):  # dy/dlam = D - y  (with y = x / alpha, s = e^{-lam}: dy/ds = (y - D)/s)
        s = mt.sigma_at(lam)
        d = model((y * mt.alpha(s)).to(x.dtype), torch.tensor(s, dtype=torch.float64))
        return d.to(torch.float64) - y

    return rk4(f, y, lam0, h, steps) * mt.alpha(sigmas_end)


def sigma_reference_solve(model: Any, x: torch.Tensor, sigma_end: float, sigma_start: float,
                          steps: int) -> torch.Tensor:
    """The probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (the same form for VE and
    flow models) by classical RK4 in sigma itself, ``steps`` equal steps, float64 state, from
    ``sigma_start`` to ``sigma_end`` (> 0). For flow models, whose paths are nearly straight in
    sigma and whose velocity stays finite at both ends (where half-log-SNR steps are poor:
    lambda -> -inf at sigma = 1)."""
    y = x.to(torch.float64)
    h = (sigma_end - sigma_start) / steps

    def f(y, s):
        d = model(y.to(x.dtype), torch.full((x.shape[0],), s, dtype=x.dtype))
        return (y - d.to(torch.float64)) / s

    return rk4(f, y, sigma_start, h, steps)


def median_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Median over samples of the per-sample RMS difference to the reference.

    The median, not the mean: at very low NFE a few trajectories end in a different
    mixture component, and their O(1) errors would otherwise hide the typical accuracy.
    """
    per_sample = ((out.to(torch.float64) - ref) ** 2).flatten(1).mean(1).sqrt()
    return float(per_sample.median())


def quality_table(contenders: Sequence[Contender], model: AnalyticDenoiser, x: torch.Tensor,
                  budgets: Sequence[int], schedule: str = "edm_rho", seed: int = 0,
                  reference: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                  log: Callable[[str], None] = print) -> List[dict]:
    """Rows {label, source, nfe, calls, w2, weight_tv, ref_err} for every contender and budget.

    ``ref_err`` (deterministic contenders only, when ``reference`` is given) is
    :func:`median_error` of the final samples against the reference.
    """
    rows = []
    ref = reference(x) if reference is not None else None
    for nfe in budgets:
        for c in contenders:
            out, calls = run_at_budget(c, model, x, nfe, schedule, seed)
            st = mixture_stats(out, model.mixture)
            row = dict(label=c.label, source=c.source, nfe=nfe, calls=calls, w2=st.w2,
                       weight_tv=st.weight_tv, stochastic=c.stochastic, ref_err=None)
            if ref is not None and not c.stochastic:
                row["ref_err"] = median_error(out, ref)
            rows.append(row)
            log(f"  NFE {nfe:3d}  {c.label:28s} calls={calls:3d}  W2={st.w2:.4f}"
                + (f"  ref={row['ref_err']:.2e}" if row["ref_err"] is not None else ""))
    return rows
