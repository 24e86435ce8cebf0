"""CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained classifier free guidance for
diffusion models", arXiv 2406.08070) as one option of the step loop (docs/algorithms.md,
CFG++).

Write a state as x = alpha D + sigma eps. A guided model call at x returns the guided data
estimate D_g = D_u + lam (D_c - D_u) (lam in [0, 1], the CFG++ scale) and, from the host,
the unconditional one D_u. CFG++'s DDIM step is x' = alpha' D_g + sigma' eps_u with
eps_u = (x - alpha D_u) / sigma: the data part is guided, the noise carried to the next
level is the unconditional one. Every solver gets that by one rule: each evaluation at x
is reported as the pair (D_g, eps_u), i.e. as the evaluation at the shifted point

    x~ = x + alpha (D_g - D_u) = alpha D_g + sigma eps_u,

whose own noise estimate (x~ - alpha D_g) / sigma is eps_u exactly. The step loop
(:meth:`~.run.SamplerRun.run`) replaces the state by x~ after the model call at the start of
each step; a stage inside a step that reads the model output as D (SEEDS data prediction)
uses D_g, one that reads it as eps (Runge-Kutta steps in sigma, SEEDS noise prediction)
reads it at x~ (:func:`shift`). With D_u = D_g (no unconditional branch, or cond = uncond)
x~ = x and every solver is its base form.

Where D_u comes from is the host's business (samplers/ imports no host): a source is any
object with an attribute ``last_uncond`` holding the unconditional data prediction of the
latest model call (a tensor like x, or None when the call had no unconditional branch).
The host glue passes one as ``uncond=`` (ComfyUI: a post-CFG hook; A1111: its CFG
denoiser's kept uncond); without one, the model itself is used if it has ``last_uncond``
(:class:`~seeds_samplers.digits.guidance.CFGDenoiser` with ``keep_uncond=True``).
Reading the attribute is Python, not a device synchronisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Protocol, runtime_checkable

import torch

from .registry import SAMPLERS, Param, SamplerSpec, menu_variants

__all__ = ["UncondSource", "CFG_PP", "CFGPlusPlus", "cfg_pp_source", "shift", "CFG_PP_SUFFIX", "cfg_pp_forms",
           "menu_entries"]

# Menu entries of the CFG++ forms: ``<id>_cfg_pp`` (ComfyUI's own naming: euler_cfg_pp).
CFG_PP_SUFFIX = "_cfg_pp"

CFG_PP = Param(
    "cfg_pp", False,
    "CFG++ (Chung et al. 2024): the data part of each step follows the guided prediction, the noise carried on "
    "is the unconditional one. Set the guidance (CFG) scale in [0, 1] (1 = the conditional prediction); "
    "needs the host's unconditional prediction (hosts that do not expose it refuse).",
)


@runtime_checkable
class UncondSource(Protocol):
    """Where the unconditional prediction of the latest model call is read."""

    last_uncond: Optional[torch.Tensor]


def shift(x: torch.Tensor, denoised: torch.Tensor, uncond: Optional[torch.Tensor], alpha: float) -> torch.Tensor:
    """x~ = x + alpha (D_g - D_u): the point whose noise estimate with D_g is eps_u
    (x itself when there is no unconditional prediction)."""
    if uncond is None:
        return x
    return x + (denoised - uncond.to(denoised.dtype)) * alpha


class CFGPlusPlus:
    """The step loop's CFG++ hook: the shifted point of the latest model call."""

    def __init__(self, source: UncondSource):
        self.source = source

    def shifted(self, x: torch.Tensor, denoised: torch.Tensor, alpha: float) -> torch.Tensor:
        return shift(x, denoised, self.source.last_uncond, alpha)


def cfg_pp_source(model: Any, uncond: Optional[UncondSource]) -> CFGPlusPlus:
    """The hook for ``cfg_pp=True``: ``uncond`` if given, else the model when it keeps
    ``last_uncond``; otherwise a ValueError (CFG++ without the unconditional prediction
    would silently be plain CFG)."""
    source = uncond if uncond is not None else model
    if not hasattr(source, "last_uncond"):
        raise ValueError("cfg_pp=True needs the unconditional prediction: pass uncond= (an object with "
                         "last_uncond) or a model that keeps last_uncond; this host or model gives none")
    if getattr(source, "keep_uncond", True) is False:
        # it skips the unconditional half at scale 1 (the hosts' cfg1 optimisation), where
        # CFG++ still needs it: scale 1 would silently run the base solver
        raise ValueError("cfg_pp=True: this model skips the unconditional prediction at CFG scale 1; "
                         "build it with keep_uncond=True")
    return CFGPlusPlus(source)


def cfg_pp_forms() -> List[SamplerSpec]:
    """The CFG++ menu entries: every registered sampler with the ``cfg_pp`` option, at its
    menu entry's settings with ``cfg_pp`` on, as ``<id>_cfg_pp`` / "<title> CFG++". They are
    not in :data:`~.registry.SAMPLERS` (no node, benchmark row or table of their own: the
    option is on the sampler's node); hosts that can hand over the unconditional prediction
    list them (:func:`menu_entries`)."""
    return [dataclasses.replace(spec, id=spec.id + CFG_PP_SUFFIX, title=spec.title + " CFG++",
                                summary=spec.summary + " CFG++: set the guidance scale in [0, 1].",
                                menu={**dict(spec.menu), CFG_PP.name: True})
            for spec in SAMPLERS.values() if CFG_PP in spec.params]


def menu_entries(cfg_pp: bool = True) -> List[SamplerSpec]:
    """A host's sampler menu: every registered sampler followed by its menu variants
    (:func:`~.registry.menu_variants`), then (``cfg_pp``: the host exposes the unconditional
    prediction) the CFG++ forms."""
    out = [entry for spec in SAMPLERS.values() for entry in [spec] + menu_variants(spec)]
    return out + (cfg_pp_forms() if cfg_pp else [])
