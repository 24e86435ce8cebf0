"""The guided tables' second yardstick: how far a solve lands from the process it discretises.

Under classifier-free guidance the KID to the held-out digits does not rank solvers by
accuracy: at a fixed CFG scale the converged guided processes themselves sit far from the
data (docs/sweeps.md, "ER-SDE under classifier-free guidance"), and a coarse discretisation
that guides less scores *better*. This module measures the solve instead, against the
converged process of the same model (guided or not), schedule end points and requested digits:

* **deterministic** samplers all discretise one probability-flow ODE. Its limit from each
  initial latent is solved once per seed (classical RK4 in half-log-SNR,
  :func:`.compare.reference_solve`, :data:`ODE_STEPS` steps to the schedule's last nonzero
  sigma, then the final denoising call every sampler makes there); the distance is the mean
  over samples of the per-sample RMS pixel difference to that limit, x 10^3 (pixels in
  [-1, 1]). Paired exactly: same latent, same target. On a flow model every sampler ends at
  sigma = 0 (the velocity is finite there), so the limit is the ODE's solution at 0: RK4 in
  sigma itself (:func:`.compare.sigma_reference_solve`; half-log-SNR steps cannot start at
  the samplers' first sigma, just below 1, where lambda -> -inf, and are poor over the long
  lambda range a flow schedule spans), :data:`FLOW_ODE_STEPS` equal steps to
  lambda = :data:`FLOW_LIMIT_LAMBDA`, then the denoiser there (x(0) = D + O(sigma^2)).
* **stochastic** samplers discretise a reverse SDE; the law of its solution, not a path, is
  the target. The distance is the KID x 10^3 (the bench's kernel distance on the features of
  the model's own classifier, digits or patches) between the samples and
  :data:`LIMIT_CALLS`-call samples of the same process drawn from independent latents and
  noise (seed + :data:`LIMIT_SEED`), balanced over the requested digits like the samples.
  Contenders that discretise the same SDE share one limit (:data:`SHARED_PROCESS`, computed
  with :data:`LIMIT_SOLVER`); every other stochastic contender (a noise window, another noise
  function) is its own limit: itself at :data:`LIMIT_CALLS` calls. On a flow model
  (x = (1 - sigma) x0 + sigma eps) k-diffusion's SDE samplers, handed the flow sigmas as the
  hosts' samplers are, inject noise by their VE formulas: a process whose marginals are not the
  model's. There the shared limit is k-diffusion's solver run in the model's VE variables
  (:func:`in_ve_variables`: x / alpha at sigma / alpha, the reverse SDE our samplers and
  ComfyUI's discretise), and k-diffusion's own SDE samplers are each their own limit.

* **stochastic, pathwise** (``pathwise=True``, the tables' ``--yardstick path``): every
  stochastic sampler is driven by one Brownian path per sample (:class:`.compare.PathNoise`:
  the same path whatever the steps, so increments over any partition are consistent), and its
  samples are compared per sample, like the ODE's, with the solution of its process from the
  same latent on the same path: the process's solver at :data:`PATH_CALLS` calls on that path
  (the shared process: :data:`LIMIT_SOLVER` on karras-spaced sigmas between the end points of
  the table's solve, on a flow model on ``simple``, :meth:`Yardstick.limit_sigmas`; any other:
  the contender itself on the table's schedule, which may define its process, as a noise
  window does). A consistent
  solver of a reverse SDE with additive noise converges to that pathwise solution (strongly)
  if it reads the path in the same time variable up to an affine map (it scales each
  increment to the step's exact noise variance, so such a map only rescales the path). Every
  sampler reads it at the model's own sigmas; on an SD-type model log sigma = -lambda. On a
  flow model log sigma is not affine in lambda, and the path read in log of the VE sigma
  drives another Brownian motion (the same law, another solution), so there the shared limit,
  run in the VE variables, reads its noise at the flow sigmas like the samplers
  (:func:`in_ve_variables`; read in the VE sigma, our solvers of the shared SDE on
  patches-flow stayed as far from it at 20 calls as at 8, near the unrelated samples'
  distance). The root-mean-square of the pathwise distance bounds the
  Wasserstein-2 distance of the two laws, so a small pathwise distance is a small distance
  between laws, with the ODE yardstick's per-sample resolution (the KID to the law resolves
  little once a solver is near it). The bound is one-sided: a solver built for the law (weak
  order) rather than the path (strong order) can have a near law and a far path.

The floors: for the ODE, the RMS distance between the :data:`ODE_STEPS`-step limit and one at
half the steps on the first :data:`ODE_CHECK` samples of each seed: on a smooth flow RK4's
fourth order puts the limit's own error at about 1/15 of it (tests/test_limits.py), but the
guided digits network is not that smooth in sigma: on 30 guided latents its RK4 limits at 16,
32 and 64 steps differed from 128 steps by about the same 4-5 x 10^-3 RMS, so the floor (printed
with every table) is the limit's uncertainty itself; for the SDE, the KID between two independent draws of the shared
limit (seeds s and s + 1): what an exact solve would score; for the pathwise SDE, the distance
between the shared process's solutions at :data:`PATH_CALLS` and half as many calls on the same
paths (the limit's own error is about that size, since its solver's strong order is about 1;
measured on digits-eps: 44 and 24 x 10^-3 RMS from the 240-call solution at 60 and 120 calls).
The own processes' limits (each such contender itself at 240 calls) are not checked so.

What the path between a solver's steps leaves (:meth:`Yardstick.between_steps`, sweeps'
``--between-steps``): every sampler here reads the path only through its increments between
its own sigmas (one Gaussian per step, scaled to the step's exact noise variance), while the
solution depends on the path inside each step too (a step's exact noise term weighs the
path's increments inside it unevenly). The shared process's solution on the paths known only
at those sigmas (each linearly interpolated between them in log sigma: its conditional mean
given them, :class:`.compare.InterpolatedPathNoise`), at the path solution's calls and sigmas,
lies this far from the path solution; a row's distance above it is what its weighing of the
model calls adds (roughly: the two errors are not independent).

Limits are cached beside the bench's per-seed results (:func:`.decide.cache_dir` / limits),
keyed by the model's weights, the model-type maps (samplers/model_types.py) and a stochastic
limit's solver: a change to another solver does not recompute them. The path tables' limits
and scores are also keyed by the code that draws the paths (:func:`.compare.path_version`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import torch

from ..samplers.model_types import resolve_model_type
from .compare import (Contender, InterpolatedPathNoise, interpolation_version, kdiffusion, path_version, reference_solve,
                      schedule_for, sigma_reference_solve)
from .host_schedules import karras_between

__all__ = ["ODE_STEPS", "FLOW_ODE_STEPS", "FLOW_LIMIT_LAMBDA", "ODE_CHECK", "LIMIT_CALLS", "LIMIT_SEED",
           "SHARED_PROCESS", "SDE_PARAMS", "LIMIT_SOLVER", "FLOW_SDE", "FLOW_SHARED_PATH", "PATH_SPACING",
           "PATH_CALLS", "Yardstick", "ode_steps", "process_of", "path_error", "in_ve_variables"]

ODE_STEPS = 24  # RK4 steps (4 calls each) of the ODE limit: more do not sharpen it on the guided digits (above)
FLOW_ODE_STEPS = 64  # RK4 steps in sigma of a flow model's limit: the tables print 64 vs 32 steps as the floor
FLOW_LIMIT_LAMBDA = 8.0  # a flow limit's last sigma, 1 / (1 + e^8) = 3.4e-4: D there is x(0) to O(sigma^2)
ODE_CHECK = 50  # samples per seed whose limit is also solved at half the steps (the ODE floor)
LIMIT_CALLS = 60  # model calls of a stochastic limit: six times the largest decided budget but 20
LIMIT_SEED = 1000  # a limit of seed s draws latents and noise of seed s + LIMIT_SEED
PATH_CALLS = 240  # model calls of a pathwise SDE limit: 12 times the largest decided budget
UNITS = 1e3

# Stochastic contenders that discretise the reverse-time SDE with its full noise (DPM-Solver++'s
# eta = 1, SEEDS' eta = 1, ER-SDE's "original SDE" noise function, ancestral sampling at eta = 1),
# with no noise window: every consistent solver of them converges to one law. Keyed by
# (label, source); anything else stochastic is its own limit.
SHARED_PROCESS = frozenset({
    ("SEEDS-1", "ours"), ("SEEDS-3", "ours"), ("ER-SDE-Solver", "ours"), ("ER-SDE-Solver 3M", "ours"),
    ("dpmpp_2m_sde", "k-diffusion"), ("dpmpp_3m_sde", "k-diffusion"), ("dpmpp_sde", "k-diffusion"),
    ("euler_ancestral", "k-diffusion"), ("dpmpp_2m_sde", "ComfyUI"), ("dpmpp_2m_sde_heun", "ComfyUI"),
    ("seeds_2", "ComfyUI"), ("seeds_3", "ComfyUI"),
})
# the shared limit's solver: k-diffusion's DPM-Solver++(2M) SDE, not one of ours
LIMIT_SOLVER = ("dpmpp_2m_sde", "k-diffusion")
# what a stochastic score on a flow model records of the flow handling (module docstring)
FLOW_SDE = "shared limit in the VE variables; k-diffusion's SDE samplers their own limits"
# where the shared limit of a flow model reads its Brownian path (module docstring, pathwise)
FLOW_SHARED_PATH = "at the model's own sigmas"
# the schedule of the shared process's path solution (Yardstick.limit_sigmas), recorded in the
# path scores' cache keys: a score against another limit is another score
PATH_SPACING = "karras between the solve's end points; flow: simple"


def ode_steps(model_type) -> int:
    """RK4 steps of a model's ODE limit: :data:`FLOW_ODE_STEPS` in sigma on a flow model,
    :data:`ODE_STEPS` in half-log-SNR on the others."""
    return FLOW_ODE_STEPS if model_type.is_flow else ODE_STEPS


def _next_seed(seed: int, seeds: Sequence[int]) -> int:
    """The seed after ``seed`` in the table's ``seeds`` (cyclically): an independent draw of
    the same law, for the floors and the unrelated samples."""
    return seeds[(list(seeds).index(seed) + 1) % len(seeds)]


def process_of(c: Contender, flow: bool = False) -> str:
    """The process a contender's samples converge to: "ode", "sde" (shared) or "own:<label>";
    on a flow model (``flow``) k-diffusion's SDE samplers are their own (module docstring). A
    configuration of a menu entry of ours (a sweep's, bench/sweep.py) is the entry's process
    while its :data:`SDE_PARAMS` are the entry's."""
    if not c.stochastic:
        return "ode"
    label = _entry_process(c) or c.label
    shared = (label, c.source) in SHARED_PROCESS and not (flow and c.source == "k-diffusion")
    return "sde" if shared else f"own:{c.label}|{c.source}|{sorted(c.params.items())}"


# the settings of ours that define the SDE a stochastic solver discretises (the others change
# how it is solved: order, expansion, corrector, long_step_ratio, stage fractions)
SDE_PARAMS = ("noise_scale_function", "eta", "s_noise", "noise_start", "noise_end")


def _entry_process(c: Contender) -> Optional[str]:
    """The title of the menu entry ``c`` (ours) is a configuration of when it discretises that
    entry's SDE (its :data:`SDE_PARAMS` are the entry's), else None."""
    if c.source != "ours" or c.entry is None:
        return None
    mine, menu = c.entry.resolve(**c.params), c.entry.menu_settings()
    return c.entry.title if all(mine.get(k) == menu.get(k) for k in SDE_PARAMS) else None


def in_ve_variables(c: Contender) -> Contender:
    """A k-diffusion contender run on a flow model's VE-equivalent variables: the state
    x / alpha at sigma / alpha (alpha = 1 - sigma), with the model's own D (the same in both
    variables); alpha = 1 at the final sigma = 0, so the result needs no mapping back. An
    injected noise sampler is read at the flow sigmas, as the samplers on the model read it."""
    inner = c.fn

    def fn(model, x, sigmas, **kw):
        mt = resolve_model_type(model)
        sig = mt.prepare_sigmas(sigmas.tolist())  # a first sigma of 1 (alpha = 0) moves just below
        ve = torch.tensor([mt.ve_sigma(s) for s in sig], dtype=torch.float64)

        def denoiser(x_ve: torch.Tensor, s_ve: torch.Tensor, **extra) -> torch.Tensor:
            t = mt.sigma_from_ve(float(s_ve[0]))  # k-diffusion calls with one sigma for the batch
            return model(x_ve * mt.alpha(t), s_ve.new_full(s_ve.shape, t), **extra)

        noise = kw.get("noise_sampler")
        if noise is not None:
            # read at the model's own sigmas, as every sampler on the model reads it: a path
            # read in log of the VE sigma (not affine in log of the flow sigma) is another
            # driving Brownian motion (module docstring, pathwise)
            kw["noise_sampler"] = lambda a, b: noise(mt.sigma_from_ve(float(a)), mt.sigma_from_ve(float(b)))
        return inner(denoiser, x / mt.alpha(sig[0]), ve.to(sigmas.dtype), **kw)

    return dataclasses.replace(c, fn=fn, label=f"{c.label} in VE variables")


def path_error(samples: torch.Tensor, limit: torch.Tensor) -> float:
    """Mean over samples of the per-sample RMS difference to the limit, x 10^3."""
    per = ((samples.to(torch.float64) - limit.to(torch.float64)) ** 2).flatten(1).mean(1).sqrt()
    return UNITS * float(per.mean())


class Yardstick:
    """Scores a decided table's runs against the converged process (module docstring).

    Args:
        model: the trained test model (:func:`.models.build_model`), guided or not.
        schedule: the table's host schedule (its end points fix the ODE limit).
        generate: ``generate(contenders, nfe, seed, samples, sigmas=None, noise=None) -> [(samples, calls)]``,
            the table's own generation (the same chunks, labels and noise streams), on
            ``sigmas`` instead of the table's schedule when given, driven by ``noise`` (a
            noise class) instead of the table's noise when given.
        key: ``key(**fields) -> str``, the cache key of a limit (model weights and code).
        cache: directory for the limits.
        features: ``features(images) -> [n, D]``, the KID's scaled classifier features.
        labels: ``labels(n) -> [n]``, the digit each of n samples requests (a guided model's
            stochastic tables: the KID is then taken per requested digit and averaged, as the
            guided data KID is; on all samples together the classes' own distances dominate
            and the solvers' differences within a class vanish in the noise).
        pathwise: score stochastic samples per sample against their process's solution on the
            same Brownian path (module docstring); ``generate`` must then drive the samplers
            with :class:`.compare.PathNoise` (:attr:`noise`).
    Attributes:
        fields: what a table run's cache key records of this yardstick.
        sample_calls: samples x model calls spent on limits by this object.
        noise: the noise the table's stochastic samplers draw ("path" or "gaussian").
    """

    def __init__(self, model, schedule: str, generate: Callable, key: Callable[..., str], cache: Path,
                 features: Callable[[torch.Tensor], torch.Tensor],
                 labels: Optional[Callable[[int], torch.Tensor]] = None, pathwise: bool = False):
        self.model, self.schedule, self.generate, self.key, self.cache = model, schedule, generate, key, cache
        self.pathwise = pathwise
        self.noise = "path" if pathwise else "gaussian"
        self.features, self.labels = features, labels
        self.flow = model.model_type.is_flow
        self.shared = in_ve_variables(kdiffusion(LIMIT_SOLVER[0])) if self.flow else kdiffusion(LIMIT_SOLVER[0])
        self.fields = dict(name="limit", ode_steps=ODE_STEPS, ode_check=ODE_CHECK, calls=LIMIT_CALLS,
                           seed=LIMIT_SEED, shared=list(LIMIT_SOLVER), processes=sorted(map(list, SHARED_PROCESS)))
        if labels is not None:
            self.fields["kid"] = "per requested digit"
        if pathwise:  # another score and another noise for the stochastic rows
            self.fields.update(name="path", calls=PATH_CALLS, noise=path_version(), spacing=PATH_SPACING)
        self.sample_calls = 0

    def fields_for(self, c: Contender) -> dict:
        """What the cache key of ``c``'s score records of this yardstick: :attr:`fields`, and on
        a flow model for a stochastic ``c`` the flow handling of its limit (and of the shared
        limit's path)."""
        if not (self.flow and c.stochastic):
            return self.fields
        return dict(self.fields, flow_sde=FLOW_SDE, **self._shared_path(c))

    def process(self, c: Contender) -> str:
        """:func:`process_of` on this model, the limit's own solver (on a flow model wrapped
        by :func:`in_ve_variables`, under another label) included in the shared process."""
        return "sde" if c is self.shared else process_of(c, self.flow)

    def _shared_path(self, c: Contender) -> dict:
        """On a flow model's path tables, the key field of the shared limit's path time
        (:data:`FLOW_SHARED_PATH`) for ``c`` of the shared process; nothing otherwise."""
        if self.pathwise and self.flow and self.process(c) == "sde":
            return dict(shared_path=FLOW_SHARED_PATH)
        return {}

    # --- limits ---------------------------------------------------------------------------

    def _load_or(self, fields: dict, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        path = self.cache / "limits" / f"{self.key(**fields)}.pt"
        if path.is_file():
            return torch.load(path)
        out = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        return out

    def ode_limit(self, seed: int, samples: int, sigma_max: float, sigma_min: float,
                  steps: Optional[int] = None, count: Optional[int] = None) -> torch.Tensor:
        """The ODE limit of the first ``count`` (default all) of seed ``seed``'s latents, from
        ``sigma_max`` to ``sigma_min`` (0: a flow model's x(0)) in ``steps`` RK4 steps (default
        :data:`ODE_STEPS`, :data:`FLOW_ODE_STEPS` to 0)."""
        from .decide import CHUNK

        mt = self.model.model_type
        if not math.isfinite(mt.half_log_snr(sigma_max)):
            raise ValueError(f"the ODE limit starts at a finite half-log-SNR; got sigma {sigma_max:g} for "
                             f"{self.model.name} (a flow schedule's first sigma goes through prepare_sigmas)")
        to_zero = sigma_min == 0.0  # a flow model's x(0): RK4 in sigma, see the module docstring
        # stop where the final denoising call is x(0) to O(sigma^2)
        end = mt.sigma_at(FLOW_LIMIT_LAMBDA) if to_zero else sigma_min
        steps = steps or ode_steps(mt)
        solve = sigma_reference_solve if to_zero else reference_solve
        count = samples if count is None else count
        fields = dict(kind="ode", seed=seed, samples=samples, count=count, steps=steps,
                      sigmas=(round(sigma_max, 6), round(sigma_min, 6)))

        def make() -> torch.Tensor:
            x = self.model.prior(samples, seed)[:count]
            den = self.model.denoiser
            parts = []
            for k0 in range(0, count, CHUNK):  # the table's chunks: the same requested digit per sample
                xc = x[k0:k0 + CHUNK]
                with torch.inference_mode():
                    y = solve(den, xc, end, sigma_max, steps)
                    s = torch.full((xc.shape[0],), end, dtype=xc.dtype)
                    parts.append(den(y.to(xc.dtype), s))  # the final call every sampler makes
            self.sample_calls += count * (4 * steps + 1)
            return torch.cat(parts)

        return self._load_or(fields, make)

    def path_limit(self, c: Contender, seed: int, samples: int, nfe: int, calls: int = PATH_CALLS,
                   **known) -> torch.Tensor:
        """The solution of ``c``'s process from seed ``seed``'s own latents on its own Brownian
        paths (the table's) between the end points of ``c``'s solve at ``nfe`` calls: the
        process's solver at ``calls`` calls (the shared process on :meth:`limit_sigmas`);
        ``known``: another noise and its key fields (:meth:`between_steps`)."""
        sigmas = self.limit_sigmas(nfe, c, calls) if self.process(c) == "sde" else None
        return self._process(c, seed, samples, calls, seed, sigmas, noise=path_version(), **self._shared_path(c),
                             **known)

    def between_steps(self, c: Contender, seed: int, samples: int, nfe: int, calls: int = PATH_CALLS) -> float:
        """The distance (RMS x 10^3, seed ``seed``) to the path solution of the shared process
        of its solve on the same paths known only at ``c``'s own sigmas at ``nfe`` calls (each
        path linearly interpolated in log sigma between them, its conditional mean given
        those values: :class:`.compare.InterpolatedPathNoise`), at :meth:`path_limit`'s calls
        and sigmas. Every sampler here reads the path only through its increments between its
        own sigmas: this much of its distance comes from what it cannot know of the path, and
        no weighing of its model calls removes it."""
        if self.process(c) != "sde" or not self.pathwise:
            raise ValueError(f"between_steps solves the shared process on a path table; {c.label} is "
                             f"{self.process(c)}")
        # the sigmas the solver reads the path at (a flow schedule's first one below 1, as it runs)
        nodes = self.model.model_type.prepare_sigmas(schedule_for(self.model.denoiser, c.intervals_for(nfe),
                                                                   self.schedule))
        known = self.path_limit(c, seed, samples, nfe, calls, known_at=[round(s, 9) for s in nodes],
                                interpolation=interpolation_version(), noise_maker=InterpolatedPathNoise.factory(nodes))
        return path_error(known, self.path_limit(c, seed, samples, nfe, calls))

    def limit_sigmas(self, nfe: int, c: Contender, calls: int = PATH_CALLS) -> torch.Tensor:
        """The shared process's path solution's schedule for ``c``'s solve at ``nfe`` calls
        (:data:`PATH_SPACING`): ``calls`` sigmas then 0, spaced as the hosts' ``karras`` (rho 7)
        from ``c``'s first sigma to the sigma of its final denoising call; on a flow model,
        whose samplers all run from sigma 1 to 0, the hosts' ``simple`` (evenly in the model's
        timestep). Not the table's own schedule: a long step of it stays long at any count (the
        last step of ``normal`` is 4-5 times the one before, in half-log-SNR), and the limit
        would carry that step's error (solved on ``normal`` itself, patches-eps's limit was
        32 x 10^-3 RMS from its 120-call solve, against 7.5 on karras). Karras spacing does not
        suit a flow model: on patches-flow, 240 karras steps to sigma 3.4e-4 were 47 x 10^-3
        RMS from a 960-step solve, 240 simple steps 27 (480 of either: 22)."""
        if not self.model.model_type.is_flow:
            return karras_between(*self.ends(nfe, c), calls)
        out = schedule_for(self.model.denoiser, calls, "simple")
        first = float(schedule_for(self.model.denoiser, c.intervals_for(nfe), self.schedule)[0])
        if first != float(out[0]):
            raise ValueError(f"a flow model's path solution starts at sigma {float(out[0]):g}; "
                             f"the {self.schedule} schedule starts at {first:g}")
        return out

    def sde_limit(self, c: Contender, seed: int, samples: int) -> torch.Tensor:
        """Samples of ``c``'s process at :data:`LIMIT_CALLS` calls from seed + LIMIT_SEED."""
        return self._process(c, seed, samples, LIMIT_CALLS, seed + LIMIT_SEED)

    def sde_from_latents(self, c: Contender, seed: int, samples: int) -> torch.Tensor:
        """Samples of ``c``'s process at :data:`LIMIT_CALLS` calls from seed ``seed``'s own
        latents and noise seed, the draw a table's rows start from (:meth:`sde_limit` draws
        independent ones, as a KID between two sample sets needs): the converged SDE beside a
        table scored by the data, where the shared latents take their share out of the
        per-seed difference."""
        return self._process(c, seed, samples, LIMIT_CALLS, seed, latents="own")

    def _process(self, c: Contender, seed: int, samples: int, calls: int, draw: int,
                 sigmas: Optional[torch.Tensor] = None, noise_maker: Optional[Callable] = None,
                 **more) -> torch.Tensor:
        """``c``'s process solved at ``calls`` calls by its solver (the shared one or ``c``)
        from the latents and noise of seed ``draw``, cached under seed ``seed``; on the table's
        schedule, or on ``sigmas`` (then keyed by them, not by the schedule's name); driven by
        ``noise_maker`` (a noise class, :meth:`.compare.Contender.__call__`; ``more`` must key
        it) instead of the table's noise."""
        process = self.process(c)
        solver = self.shared if process == "sde" else c
        where = dict(schedule=self.schedule) if sigmas is None else dict(sigmas=[round(float(s), 9) for s in sigmas])
        fields = dict(kind=process, solver=(solver.label, solver.source, repr(sorted(solver.params.items()))),
                      seed=seed, samples=samples, calls=calls, **where, **more)

        def make() -> torch.Tensor:
            out, used = self.generate([solver], calls, draw, samples, sigmas=sigmas, noise=noise_maker)[0]
            self.sample_calls += used * samples
            return out

        return self._load_or(fields, make)

    # --- scores -----------------------------------------------------------------------------

    def kid(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """KID x 10^3 between two sample sets (per requested digit with ``labels``)."""
        from ..digits.fd import class_kernel_distance, kernel_distance

        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
            return float("inf")
        if self.labels is None:
            return UNITS * kernel_distance(self.features(a), self.features(b))
        return UNITS * class_kernel_distance(self.features(a), self.labels(a.shape[0]), self.features(b),
                                             self.labels(b.shape[0]))

    def ends(self, nfe: int, c: Contender) -> Tuple[float, float]:
        """Where ``c``'s solve starts and the sigma whose denoising call ends it (0: a flow
        model, whose samplers step to sigma = 0; its first sigma as the samplers see it)."""
        sig = [float(s) for s in schedule_for(self.model.denoiser, c.intervals_for(nfe), self.schedule)]
        mt = self.model.model_type
        if mt.is_flow:
            return mt.prepare_sigmas(sig)[0], 0.0
        return sig[0], sig[-2]

    def score(self, c: Contender, seed: int, nfe: int, samples: torch.Tensor) -> float:
        """The distance of ``c``'s samples (seed ``seed``, ``nfe`` calls) to its limit (inf for
        samples that are not finite)."""
        if c.stochastic and not self.pathwise:
            return self.kid(samples, self.sde_limit(c, seed, samples.shape[0]))
        if not bool(torch.isfinite(samples).all()):
            return float("inf")
        if c.stochastic:
            return path_error(samples, self.path_limit(c, seed, samples.shape[0], nfe))
        return path_error(samples, self.ode_limit(seed, samples.shape[0], *self.ends(nfe, c)))

    def unrelated(self, seed: int, samples: int, seeds: Sequence[int], nfe: int) -> float:
        """The path score of a sampler that has lost the path: the RMS between the shared
        process's solutions (for a solve at ``nfe`` calls) of seed ``seed`` and of the next seed
        (other latents, other paths, the same law). A row near it follows its path no better
        than an independent sample."""
        other = _next_seed(seed, seeds)
        return path_error(self.path_limit(self.shared, seed, samples, nfe),
                          self.path_limit(self.shared, other, samples, nfe))

    def floor(self, kind: str, seed: int, samples: int, nfe: int, c: Contender, seeds: Sequence[int]) -> float:
        """What an exact solve scores (module docstring), for seed ``seed``."""
        if kind == "stochastic" and self.pathwise:
            return path_error(self.path_limit(self.shared, seed, samples, nfe, PATH_CALLS // 2),
                              self.path_limit(self.shared, seed, samples, nfe))
        if kind == "stochastic":
            other = _next_seed(seed, seeds)
            return self.kid(self.sde_limit(self.shared, seed, samples), self.sde_limit(self.shared, other, samples))
        ends = self.ends(nfe, c)
        count = min(ODE_CHECK, samples)
        half = ode_steps(self.model.model_type) // 2
        return path_error(self.ode_limit(seed, samples, *ends, steps=half, count=count),
                          self.ode_limit(seed, samples, *ends)[:count])
