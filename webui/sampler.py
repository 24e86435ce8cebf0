"""The webui sampler object of a registry entry: a subclass of the host's
``KDiffusionSampler`` built around the solver function.

What it adds to the host's class (which computes sigmas, the starting latent, the CFG
wrapper and calls ``self.func``):

* ``initialize(p)`` reads the entry's parameters from the settings (``shared.opts``,
  where a request's ``override_settings`` are in effect), checks them and writes them to
  the infotext (``p.extra_generation_params``);
* ``self.func`` is :meth:`run`, whose signature has ``sigmas`` and nothing else the host
  fills in (no ``eta``, ``n``, ``sigma_min``): the host passes the schedule, the CFG model,
  ``extra_args`` (passed through untouched), ``callback`` and ``disable``;
* per-image seeded noise: ``noise_type="gaussian"`` draws from the webui's own per-image
  generators ``p.rng`` (the noise Euler a gets: seeds, ENSD and the RNG-source setting
  apply; an image does not depend on its batch); ``"brownian"`` uses the package's
  Brownian noise keyed by each image's seed (+ ENSD);
* the model type (eps/v: VE; SD3/Flux: flow) is read from the host's denoiser wrapper
  (:mod:`.model_type`) and passed to the solver; a wrapper nothing here knows is refused
  with a ValueError that the webui shows, instead of guessing;
* ``sigmas`` moved to the latent's device (A1111 passes them on the CPU), the callback
  once per step, and Interrupt / Skip checked after every step (the host's CFG wrapper
  also checks before every model call);
* CFG++ (``cfg_pp``): the unconditional prediction from the host's CFG denoiser, which keeps
  it when asked (``need_last_noise_uncond`` / ``last_noise_uncond``, what A1111's own "DDIM
  CFG++" reads), with the host's CFG++ scale convention (CFG scale / 12.5, so 12.5 is 1);
  a denoiser without them is refused (:class:`HostUncond`).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional

import torch

from ..samplers.noise import BrownianNoise, GaussianNoise
from ..samplers.registry import SamplerSpec
from .model_type import detect_model_type
from .naming import infotext_fields, sampler_settings, values_from_options

__all__ = ["make_sampler_class", "steps_factor", "batch_seeds_of", "HostRNGNoise", "HostUncond",
           "CFG_PP_SCALE_DIVISOR", "exposes_uncond"]

# A1111's CFG++ convention (its "DDIM CFG++" sets this multiplier): the CFG scale slider's
# 0-12.5 is CFG++'s guidance scale 0-1.
CFG_PP_SCALE_DIVISOR = 12.5


def steps_factor(spec: SamplerSpec, opts: Any) -> int:
    """Model calls per step with the current settings (the menu entry's when they are invalid)."""
    try:
        params = values_from_options(sampler_settings(spec), opts)
    except ValueError:
        params = spec.menu_settings()
    return max(1, int(spec.calls(**params)))


def batch_seeds_of(p: Any, batch: int, ensd: int = 0) -> List[int]:
    """Seeds of the images in this batch (``p.seeds``, else ``p.seed`` + b), plus ENSD."""
    seeds = [int(s) for s in (getattr(p, "seeds", None) or [])]
    if len(seeds) != batch:
        first = seeds[0] if seeds else int(getattr(p, "seed", 0) or 0)
        seeds = [first + b for b in range(batch)]
    return [s + int(ensd) for s in seeds]


class HostRNGNoise:
    """``noise_sampler(sigma, sigma_next)`` drawing from the webui's ``p.rng``
    (``ImageRNG``: one generator per image)."""

    def __init__(self, rng: Any, x: torch.Tensor):
        self.rng = rng
        self.device = x.device
        self.dtype = x.dtype

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        return self.rng.next().to(device=self.device, dtype=self.dtype)


class HostUncond:
    """The webui CFG denoiser's unconditional x0 prediction of each call, as the solvers'
    :class:`~seeds_samplers.samplers.cfg_pp.UncondSource`. Asks the denoiser to keep it
    and sets the host's CFG++ scale convention (:data:`CFG_PP_SCALE_DIVISOR`) for this
    sampler's run (the denoiser is built per sampler, per generation)."""

    def __init__(self, denoiser: Any):
        if not _keeps_uncond(denoiser):
            raise ValueError("CFG++ needs the unconditional prediction, which this webui's CFG denoiser "
                             f"({type(denoiser).__name__}) does not expose; turn cfg_pp off")
        denoiser.need_last_noise_uncond = True
        denoiser.cond_scale_miltiplier = 1.0 / CFG_PP_SCALE_DIVISOR
        self.denoiser = denoiser

    @property
    def last_uncond(self) -> Optional[torch.Tensor]:
        return self.denoiser.last_noise_uncond


def exposes_uncond(cfg_denoiser_module: Any) -> bool:
    """Whether this webui's CFG denoiser (``modules.sd_samplers_cfg_denoiser.CFGDenoiser``)
    keeps the unconditional prediction the way :class:`HostUncond` reads it: probed on an
    instance (the attributes are set in its ``__init__``). A1111 1.10: yes; Forge Classic
    (no unconditional prediction kept) and a denoiser that keeps it in another form without
    the scale multiplier (the Forge Neo fork read for this): no, so no CFG++ menu entries there."""
    cls = getattr(cfg_denoiser_module, "CFGDenoiser", None)
    if cls is None:
        return False
    try:
        probe = cls(None)
    except Exception:  # noqa: BLE001 - a denoiser we cannot build is one we do not know
        return False
    return _keeps_uncond(probe)


def _keeps_uncond(denoiser: Any) -> bool:
    """The attributes :class:`HostUncond` reads and sets on a webui CFG denoiser."""
    return hasattr(denoiser, "need_last_noise_uncond") and hasattr(denoiser, "cond_scale_miltiplier")


def make_sampler_class(kdiffusion_sampler: type, sd_samplers_common: Any, shared: Any) -> type:
    """A ``KDiffusionSampler`` subclass running registry entries (built per host)."""

    class SeedsKDiffusionSampler(kdiffusion_sampler):
        def __init__(self, spec: SamplerSpec, sd_model: Any):
            self.seeds_spec = spec
            self.seeds_settings = sampler_settings(spec)
            self.seeds_params: Optional[Dict[str, Any]] = None
            super().__init__(spec.function, sd_model)
            self.func = self.run

        def initialize(self, p):
            kwargs = super().initialize(p)
            self.seeds_params = values_from_options(self.seeds_settings, shared.opts)
            p.extra_generation_params.update(infotext_fields(self.seeds_settings, self.seeds_params))
            return kwargs

        def noise_sampler_for(self, x: torch.Tensor, params: Dict[str, Any]) -> Callable:
            p = self.p
            ensd = int(getattr(shared.opts, "eta_noise_seed_delta", 0) or 0)
            if params.get("noise_type", "gaussian") == "brownian":
                return BrownianNoise(x, batch_seeds_of(p, x.shape[0], ensd))
            rng = getattr(p, "rng", None)
            shape = tuple(getattr(rng, "shape", ()) or ())
            if rng is not None and shape == tuple(x.shape[1:]) and len(getattr(rng, "seeds", [])) == x.shape[0]:
                return HostRNGNoise(rng, x)
            return GaussianNoise(x, batch_seeds_of(p, x.shape[0], ensd))

        def checked_callback(self, callback: Optional[Callable]) -> Callable:
            state = shared.state
            interrupted = sd_samplers_common.InterruptedException

            def step_done(d):
                if callback is not None:
                    callback(d)
                if getattr(state, "interrupted", False) or getattr(state, "skipped", False):
                    raise interrupted

            return step_done

        def run(self, model, x, sigmas, extra_args=None, callback=None, disable=None):
            spec = self.seeds_spec
            params = dict(self.seeds_params if self.seeds_params is not None
                          else values_from_options(self.seeds_settings, shared.opts))
            accepted = inspect.signature(spec.function).parameters
            kwargs = dict(params)
            mt = detect_model_type(model)
            if "model_type" in accepted:
                kwargs["model_type"] = mt
            if "noise_sampler" in accepted and spec.is_stochastic(**params):
                kwargs["noise_sampler"] = self.noise_sampler_for(x, params)
            if params.get("cfg_pp"):
                kwargs["uncond"] = HostUncond(model)
            return spec.function(model, x, sigmas.to(x.device), extra_args=extra_args,
                                 callback=self.checked_callback(callback), disable=disable, **kwargs)

    SeedsKDiffusionSampler.__name__ = SeedsKDiffusionSampler.__qualname__ = "SeedsKDiffusionSampler"
    return SeedsKDiffusionSampler
