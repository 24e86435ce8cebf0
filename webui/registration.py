"""Putting the registry into a running webui's sampler and schedule lists.

The host modules are passed in (``sd_samplers``, ``sd_samplers_common``,
``sd_samplers_kdiffusion``, ``sd_schedulers``, ``shared``), so the same code runs on
AUTOMATIC1111, Forge, reForge and Forge Classic and, in the tests, on stand-ins that follow their
documented behaviour:

* samplers: a ``SamplerData`` per registry entry, appended **in place** to
  ``sd_samplers.all_samplers`` (other modules hold that very list; ``samplers`` is the
  same object after ``set_samplers()``), stored in ``all_samplers_map``, then
  ``set_samplers()`` and the ``get_sampler_and_scheduler`` cache cleared. An entry of
  ours that is already there (Reload UI re-runs the script; a second copy of the
  extension) is replaced at its index: never a duplicate.
* schedules: ``sd_schedulers.Scheduler(name, label, fn, need_inner_model=True)``
  appended in place to ``schedulers`` (and ``all_schedulers`` where a fork has it) and
  ``schedulers_map`` updated in place with name and label. A webui without
  ``sd_schedulers`` (Forge Classic, built on A1111 1.8) has no schedule menu: its
  ``KDiffusionSampler.get_sigmas`` looks the "Scheduler type" setting (``k_sched_type``,
  infotext "Schedule type") up in ``sd_samplers_kdiffusion.k_diffusion_scheduler``, so
  each schedule is added there under its label and to that setting's choices.
* settings: one option per parameter in the section "SEEDS Samplers".

Nothing here names a sampler: everything follows ``SAMPLERS`` / ``SCHEDULES``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional

import torch

from ..samplers.model_types import VE
from ..samplers.registry import HOST_MARK, SAMPLERS, SamplerSpec
from ..samplers.schedules import SCHEDULES, ScheduleSpec
from .model_type import denoiser_model_type
from .naming import (
    OWNER_OPTION, SCHEDULE_SETTING, SECTION, Setting, check_unique, ends_with_scheduler_word, sampler_label,
    sampler_settings, schedule_label, schedule_settings, values_from_options,
)
from .sampler import make_sampler_class, steps_factor

log = logging.getLogger("seeds_samplers")

__all__ = ["register_samplers", "register_schedulers", "register_settings", "scheduler_function", "host_denoiser",
           "sampler_data_class", "is_ours", "entry_options"]


def is_ours(data: Any) -> bool:
    options = getattr(data, "options", None)
    return isinstance(options, dict) and options.get(OWNER_OPTION) is not None


def entry_options(spec: SamplerSpec) -> Dict[str, Any]:
    """``SamplerData.options`` of an entry: scalars only. ``uses_ensd`` makes the webui
    write the ENSD setting to the infotext when it changes our noise."""
    opts: Dict[str, Any] = {OWNER_OPTION: spec.id}
    if spec.stochastic is not False:
        opts["uses_ensd"] = True
    return opts


def sampler_data_class(sd_samplers_common: Any, shared: Any, spec: SamplerSpec) -> type:
    """``SamplerData`` of one entry whose ``total_steps`` counts model calls (the CFG
    wrapper's step counter, which prompt editing and the refiner switch read, advances
    once per call), with the current settings."""
    base = sd_samplers_common.SamplerData

    class SeedsSamplerData(base):
        __slots__ = ()
        seeds_spec = spec

        def total_steps(self, steps):
            return steps * steps_factor(self.seeds_spec, getattr(shared, "opts", None))

    SeedsSamplerData.__name__ = SeedsSamplerData.__qualname__ = "SeedsSamplerData"
    return SeedsSamplerData


def _scheduler_words(sd_schedulers: Any) -> List[str]:
    words = []
    for s in getattr(sd_schedulers, "schedulers", None) or []:
        words += [s.label, s.name, *(getattr(s, "aliases", None) or [])]
    return words


def register_samplers(sd_samplers: Any, sd_samplers_common: Any, sd_samplers_kdiffusion: Any, sd_schedulers: Any,
                      shared: Any, specs: Optional[List[SamplerSpec]] = None) -> Dict[str, List[str]]:
    """Add (or refresh) one menu entry per sampler; returns ``{"added", "replaced", "skipped"}``."""
    specs = list(SAMPLERS.values()) if specs is None else specs
    sampler_cls = make_sampler_class(sd_samplers_kdiffusion.KDiffusionSampler, sd_samplers_common, shared)
    live = sd_samplers.all_samplers  # the list object everyone holds: mutated, never rebound
    words = _scheduler_words(sd_schedulers)
    added, replaced, skipped = [], [], []
    for spec in specs:
        label = sampler_label(spec)
        word = ends_with_scheduler_word(label, words)
        if word is not None:
            log.error("SEEDS Samplers: label %r ends with the scheduler name %r; not added", label, word)
            skipped.append(label)
            continue
        index = next((i for i, d in enumerate(live) if d.name.lower() == label.lower()), None)
        if index is not None and not is_ours(live[index]):
            log.warning("SEEDS Samplers: the sampler name %r is already used by %r; not adding ours", label,
                        live[index].name)
            skipped.append(label)
            continue
        data = sampler_data_class(sd_samplers_common, shared, spec)(label, lambda model, spec=spec: sampler_cls(spec, model), [spec.host_name],
                        entry_options(spec))
        if index is None:
            live.append(data)
            added.append(label)
        else:
            live[index] = data
            replaced.append(label)
        sd_samplers.all_samplers_map[label] = data
    # never show an entry of ours twice, whatever put it there
    seen, i = set(), 0
    while i < len(live):
        if is_ours(live[i]):
            if live[i].name in seen:
                del live[i]
                continue
            seen.add(live[i].name)
        i += 1
    sd_samplers.set_samplers()
    cache = getattr(getattr(sd_samplers, "get_sampler_and_scheduler", None), "cache_clear", None)
    if cache is not None:
        cache()
    return {"added": added, "replaced": replaced, "skipped": skipped}


def scheduler_function(spec: ScheduleSpec, settings: List[Setting], shared: Any,
                       denoiser: Optional[Callable[[], Any]] = None) -> Callable:
    """The webui scheduler function: ``fn(n, sigma_min, sigma_max, device, inner_model)``.

    ``inner_model`` (the host's denoiser wrapper) gives the model type (VE or flow, its
    sigma table); a host that passes none (Forge Classic) gets it from ``denoiser()``.
    The range is the one the webui passes (the model's, or the "sigma min/max" settings).
    Parameters come from the settings.
    """

    def schedule(n, sigma_min=None, sigma_max=None, device="cpu", inner_model=None, **_ignored):
        params = values_from_options(settings, getattr(shared, "opts", None))
        if inner_model is None and denoiser is not None:
            inner_model = denoiser()
        mt = denoiser_model_type(_Wrap(inner_model)) if inner_model is not None else VE
        if sigma_min is not None and sigma_max is not None:
            mt = replace(mt, sigma_min=float(sigma_min), sigma_max=float(sigma_max))
        elif mt.sigma_min is None or mt.sigma_max is None:
            raise ValueError(f"SEEDS Samplers: schedule {spec.title!r} needs the model's sigma range")
        sigmas = spec(int(n), mt, **params)
        return sigmas.to(device=device, dtype=torch.float32)

    schedule.__name__ = schedule.__qualname__ = "schedule_" + spec.id
    setattr(schedule, HOST_MARK, spec.id)
    return schedule


class _Wrap:
    """Present a webui denoiser the way a sampler sees it (``model.inner_model``)."""

    def __init__(self, inner: Any):
        self.inner_model = inner


def host_denoiser(sd_samplers_kdiffusion: Any) -> Optional[Callable[[], Any]]:
    """What the host's own k-diffusion samplers wrap the loaded model in (the
    ``inner_model`` A1111 >= 1.9 passes to a scheduler), for hosts that pass none."""
    cfg = getattr(sd_samplers_kdiffusion, "CFGDenoiserKDiffusion", None)
    return None if cfg is None else (lambda: cfg(None).inner_model)


def register_schedulers(sd_schedulers: Any, shared: Any, sd_samplers_kdiffusion: Any = None,
                        specs: Optional[List[ScheduleSpec]] = None) -> Dict[str, List[str]]:
    """Add (or refresh) one schedule per entry; returns ``{"added", "replaced", "skipped"}``.
    ``sd_schedulers`` None: the host's schedules are the "Scheduler type" setting."""
    specs = list(SCHEDULES.values()) if specs is None else specs
    if sd_schedulers is None:
        return _register_setting_schedulers(sd_samplers_kdiffusion, shared, specs)
    lists = [sd_schedulers.schedulers]
    extra = getattr(sd_schedulers, "all_schedulers", None)  # Forge Neo style forks
    if isinstance(extra, list) and extra is not sd_schedulers.schedulers:
        lists.append(extra)
    added, replaced, skipped = [], [], []
    for spec in specs:
        name, label = spec.host_name, schedule_label(spec)
        entry = sd_schedulers.Scheduler(name, label, scheduler_function(spec, schedule_settings(spec), shared),
                                        need_inner_model=True)
        clash = [s for s in lists[0] if not getattr(s.function, HOST_MARK, None) and
                 check_unique([name, label], [s.name, s.label])]
        if clash:
            log.warning("SEEDS Samplers: schedule name %r / %r is already used; not adding ours", name, label)
            skipped.append(label)
            continue
        was = False
        for lst in lists:
            idx = next((i for i, s in enumerate(lst) if s.name == name), None)
            if idx is None:
                lst.append(entry)
            else:
                lst[idx] = entry
                was = True
        (replaced if was else added).append(label)
        sd_schedulers.schedulers_map.update({name: entry, label: entry})
    return {"added": added, "replaced": replaced, "skipped": skipped}


def _register_setting_schedulers(sd_samplers_kdiffusion: Any, shared: Any,
                                 specs: List[ScheduleSpec]) -> Dict[str, List[str]]:
    """Forge Classic: ``k_diffusion_scheduler[label] = fn`` (called as ``fn(n=, sigma_min=,
    sigma_max=, device=[, rho=])``) and the label among the choices of ``k_sched_type``
    (mutated in place: the Settings dropdown is built from that list later)."""
    table = getattr(sd_samplers_kdiffusion, "k_diffusion_scheduler", None)
    info = getattr(shared.opts, "data_labels", {}).get(SCHEDULE_SETTING)
    choices = (getattr(info, "component_args", None) or {}).get("choices") if info is not None else None
    if not isinstance(table, dict) or not isinstance(choices, list):
        raise RuntimeError(f"this webui has neither modules.sd_schedulers nor the {SCHEDULE_SETTING!r} setting "
                           f"with sd_samplers_kdiffusion.k_diffusion_scheduler: no place for schedules")
    denoiser = host_denoiser(sd_samplers_kdiffusion)
    added, replaced, skipped = [], [], []
    for spec in specs:
        label = schedule_label(spec)
        clash = [k for k, fn in table.items() if not getattr(fn, HOST_MARK, None) and check_unique([label], [k])]
        if clash:
            log.warning("SEEDS Samplers: schedule name %r is already used; not adding ours", label)
            skipped.append(label)
            continue
        (replaced if label in table else added).append(label)
        table[label] = scheduler_function(spec, schedule_settings(spec), shared, denoiser)
        if label not in choices:
            choices.append(label)
    return {"added": added, "replaced": replaced, "skipped": skipped}


def all_settings() -> List[Setting]:
    out: List[Setting] = []
    for spec in SAMPLERS.values():
        out += sampler_settings(spec)
    for spec in SCHEDULES.values():
        out += schedule_settings(spec)
    return out


def register_settings(shared: Any, components: Optional[Dict[str, Any]] = None) -> List[str]:
    """One option per parameter in the Settings section "SEEDS Samplers" (re-adding an
    option replaces it: idempotent). ``components`` maps a kind ("checkbox", "dropdown",
    "slider", "number") to the UI component class (gradio's)."""
    if components is None:
        import gradio as gr

        components = {"checkbox": gr.Checkbox, "dropdown": gr.Dropdown, "slider": gr.Slider, "number": gr.Number}
    keys = []
    for s in all_settings():
        kind, args = s.component()
        info = _option_info(shared, s, components[kind], args)
        shared.opts.add_option(s.key, info)
        keys.append(s.key)
    return keys


def _option_info(shared: Any, s: Setting, component: Any, args: Dict[str, Any]) -> Any:
    kw: Dict[str, Any] = dict(section=SECTION, infotext=s.infotext)
    try:
        info = shared.OptionInfo(s.default, s.label, component, args, category_id="sd", **kw)
    except TypeError:  # an OptionInfo without category_id
        info = shared.OptionInfo(s.default, s.label, component, args, **kw)
    helper = getattr(info, "info", None)
    if callable(helper):
        info = helper(s.help)
    return info
