"""The benchmark's contenders: each registered sampler at its menu entry's settings (and, on
request, its other variants), and the anchors it is measured against -- k-diffusion's
samplers and, when ``COMFYUI_ROOT`` names a ComfyUI checkout, ComfyUI's own (:mod:`.comfy`)."""

from __future__ import annotations

from typing import Any, Dict, List

from ..samplers.cfg_pp import menu_entries
from ..samplers.registry import SAMPLERS, menu_variants
from .compare import Contender, kdiffusion, ours

QUALITY_BASELINES = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "dpmpp_sde", "lms",
                     "heun")


def configurations() -> List[Contender]:
    """Each registered sampler at its menu entry's settings, plus its deterministic (eta = 0)
    form and every value of a ``variant`` choice."""
    out = []
    for spec in SAMPLERS.values():
        base = ours(spec.id)
        out.append(base)
        names = {p.name: p for p in spec.params}
        if "variant" in names:
            for v in names["variant"].choices:
                if v != base.params.get("variant", names["variant"].default):
                    out.append(ours(spec.id, f"{spec.title} {v}", variant=v))
        if base.stochastic and "eta" in names:
            out.append(ours(spec.id, f"{spec.title} (eta=0)", eta=0.0))
    return out


def menu_contenders() -> List[Contender]:
    """Every menu entry of ours: each registered sampler at its menu entry's settings, then
    its menu variants (samplers/registry.py, MenuVariant)."""
    return [ours(entry) for entry in menu_entries(cfg_pp=False)]


def shown_settings(c: Contender) -> Dict[str, Any]:
    """The settings a table states for a row of ours: its menu entry's settings, and the
    value it ran of every parameter that another menu entry of the same sampler sets (so a
    default those entries differ in, such as ER-SDE's ``midpoint_above_h``, is stated too)."""
    spec = c.entry
    if spec is None:
        return dict(c.params)
    base = next((s for s in SAMPLERS.values() if s.function is spec.function), spec)
    keys = set(c.params).union(*(v.menu for v in [base, *menu_variants(base)]))
    resolved = spec.resolve(**c.params)
    return {k: resolved[k] for k in sorted(keys) if k in resolved}


def anchor_contenders(comfy: bool = True) -> List[Contender]:
    out = [kdiffusion(k) for k in QUALITY_BASELINES]
    if comfy:
        from .comfy import comfy_contenders, comfy_root

        if comfy_root() is not None:
            out += comfy_contenders()
    return out
