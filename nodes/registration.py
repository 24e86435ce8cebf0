"""Putting the samplers and schedules into ComfyUI's dropdowns.

* Samplers: ``setattr(comfy.k_diffusion.sampling, "sample_" + name, fn)`` and the name
  appended in place to ``comfy.samplers.KSAMPLER_NAMES`` and ``SAMPLER_NAMES`` (the very
  list objects ``KSampler.SAMPLERS``, KSamplerSelect and validation read). ``fn`` runs the
  solver with its menu entry's settings (:meth:`SamplerSpec.menu_settings`).
* Schedules: ``SCHEDULER_HANDLERS[name] = SchedulerHandler(fn)`` and ``SCHEDULER_NAMES``
  appended in place, where the ComfyUI version has ``SchedulerHandler`` (Dec 2024 on).

Never a rebinding, a copy or a module reload. Each entry is marked as ours, so running
this again (the pack imported twice, or two copies of it installed) adds nothing; a
name that someone else already uses is left alone and logged.

Combo snapshots: a node class registered before us whose RETURN_TYPES holds a *copy* of
``SAMPLER_NAMES`` / ``SCHEDULER_NAMES`` taken at its import would no longer equal the
live list once we append, and every link from it into KSampler would fail ComfyUI's
prompt validation ("Return type mismatch between linked nodes"). Copies still equal to
the list as it was just before our additions get the same names appended, so the link
validates as it did before this pack was installed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Dict, List, Tuple

from ..samplers.cfg_pp import menu_entries
from ..samplers.registry import HOST_MARK, SamplerSpec
from ..samplers.schedules import SCHEDULES, ScheduleSpec
from .definitions import schedule_sigmas, with_uncond_capture
from .model_type import comfy_solver

log = logging.getLogger("seeds_samplers")

def menu_function(spec: SamplerSpec) -> Callable:
    """``sample_<host name>``: the solver with its menu entry's settings; keyword options
    (``comfy.samplers.ksampler(name, extra_options)``) override them."""
    settings = spec.menu_settings()
    sample = with_uncond_capture(comfy_solver(spec.function, settings), settings)
    sample.__name__ = sample.__qualname__ = "sample_" + spec.host_name
    sample.__doc__ = f"{spec.title} ({spec.summary}) with {settings}."
    setattr(sample, HOST_MARK, spec.id)
    return sample


def _scheduler_handler(spec: ScheduleSpec) -> Callable:
    def handler(model_sampling, steps):
        return schedule_sigmas(spec, model_sampling, steps)

    handler.__name__ = handler.__qualname__ = "scheduler_" + spec.host_name
    setattr(handler, HOST_MARK, spec.id)
    return handler


def _is_ours(obj: Any) -> bool:
    return getattr(obj, HOST_MARK, None) is not None


def register_samplers(samplers_mod: Any, k_sampling: Any) -> Tuple[List[str], List[str]]:
    """Returns ``(added, skipped)`` host names."""
    added, skipped = [], []
    names_live = samplers_mod.SAMPLER_NAMES
    knames_live = getattr(samplers_mod, "KSAMPLER_NAMES", None)
    for spec in menu_entries():  # the registry's samplers, then their CFG++ forms (ss_seeds_2_cfg_pp)
        name = spec.host_name
        attr = "sample_" + name
        existing = getattr(k_sampling, attr, None)
        if (existing is not None and not _is_ours(existing)) or (existing is None and name in names_live):
            log.warning("SEEDS Samplers: sampler name %r is already used by another pack; not adding ours", name)
            skipped.append(name)
            continue
        if existing is None:
            setattr(k_sampling, attr, menu_function(spec))
        if name not in names_live:
            names_live.append(name)
            added.append(name)
        if knames_live is not None and knames_live is not names_live and name not in knames_live:
            knames_live.append(name)
    return added, skipped


def register_schedulers(samplers_mod: Any) -> Tuple[List[str], List[str]]:
    handlers = getattr(samplers_mod, "SCHEDULER_HANDLERS", None)
    handler_cls = getattr(samplers_mod, "SchedulerHandler", None)
    names_live = getattr(samplers_mod, "SCHEDULER_NAMES", None)
    if handlers is None or handler_cls is None or names_live is None:
        log.info("SEEDS Samplers: this ComfyUI has no SchedulerHandler (before Dec 2024); "
                 "the schedules are available as SIGMAS nodes only")
        return [], []
    added, skipped = [], []
    for spec in SCHEDULES.values():
        name = spec.host_name
        existing = handlers.get(name)
        theirs = existing is not None and not _is_ours(getattr(existing, "handler", None))
        if theirs or (existing is None and name in names_live):
            log.warning("SEEDS Samplers: scheduler name %r is already used by another pack; not adding ours", name)
            skipped.append(name)
            continue
        if existing is None:
            handlers[name] = handler_cls(_scheduler_handler(spec))
        if name not in names_live:
            names_live.append(name)
            added.append(name)
    return added, skipped


def extend_snapshots(before: List[str], live: List[str], added: List[str]) -> List[str]:
    """Append ``added`` to copies of ``before`` held in registered nodes' RETURN_TYPES."""
    if not added:
        return []
    nodes_mod = sys.modules.get("nodes")  # ComfyUI's nodes.py (not our .nodes package)
    mappings = getattr(nodes_mod, "NODE_CLASS_MAPPINGS", None)
    if not isinstance(mappings, dict):
        return []
    fixed = []
    for node_id, cls in list(mappings.items()):
        try:
            rtypes = cls.__dict__.get("RETURN_TYPES")  # class attribute only: no v3 schema build
        except Exception:  # noqa: BLE001 - exotic classes are simply left alone
            continue
        if not isinstance(rtypes, (tuple, list)):
            continue
        for item in rtypes:
            if isinstance(item, list) and item is not live and item == before:
                item.extend(added)
                fixed.append(node_id)
    return fixed


def register_all() -> Dict[str, Any]:
    """Register samplers and schedulers in the running ComfyUI; returns a summary."""
    import comfy.k_diffusion.sampling as k_sampling
    import comfy.samplers as samplers_mod

    before_samplers = list(samplers_mod.SAMPLER_NAMES)
    before_schedulers = list(getattr(samplers_mod, "SCHEDULER_NAMES", []))
    samplers_added, samplers_skipped = register_samplers(samplers_mod, k_sampling)
    schedulers_added, schedulers_skipped = register_schedulers(samplers_mod)
    fixed = extend_snapshots(before_samplers, samplers_mod.SAMPLER_NAMES, samplers_added)
    if schedulers_added:
        fixed += extend_snapshots(before_schedulers, samplers_mod.SCHEDULER_NAMES, schedulers_added)
    if fixed:
        log.info("SEEDS Samplers: also added our names to the sampler/scheduler list copies of %s, "
                 "which were taken before this pack loaded", sorted(set(fixed)))
    return {
        "samplers": samplers_added,
        "schedulers": schedulers_added,
        "skipped": samplers_skipped + schedulers_skipped,
        "snapshots_extended": sorted(set(fixed)),
    }
