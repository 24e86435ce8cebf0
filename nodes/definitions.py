"""Node classes generated from the registries (classic ComfyUI node API).

* one SAMPLER node per sampler family (``SAMPLERS`` grouped by ``SamplerSpec.family``),
  with a ``solver`` combo when the family has several members and one widget per
  parameter (range, step and tooltip from the ``Param``); it returns
  ``comfy.samplers.KSAMPLER(spec.function, params)`` for SamplerCustom(Advanced);
* one SIGMAS node per schedule in ``SCHEDULES`` with ``model``, ``steps``, ``denoise``
  and the schedule's own parameters.

Nothing here imports ComfyUI at module level: ``comfy`` is imported when a node runs,
so the definitions can be inspected (and the example workflows checked) without a host.
No sampler or schedule is named here; adding one to a registry adds it to the nodes.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Dict, List, Tuple

import torch

from ..samplers.model_types import model_type_from_model_sampling
from ..samplers.registry import HOST_PREFIX, SAMPLERS, SamplerSpec
from ..samplers.schedules import SCHEDULES, ScheduleSpec
from .widgets import param_input, merge_params

__all__ = [
    "SAMPLER_CATEGORY",
    "SCHEDULE_CATEGORY",
    "families",
    "family_title",
    "sampler_node_id",
    "schedule_node_id",
    "scheduler_name",
    "dropdown_settings",
    "schedule_sigmas",
    "build_node_classes",
]

# Beside ComfyUI's own SamplerER_SDE / KarrasScheduler nodes.
SAMPLER_CATEGORY = "sampling/custom_sampling/samplers"
SCHEDULE_CATEGORY = "sampling/custom_sampling/schedulers"
SOLVER_INPUT = "solver"


# --- naming: one rule for everything the pack adds to ComfyUI ------------------------
def sampler_node_id(family: str) -> str:
    return f"SS_Sampler_{family}"


def schedule_node_id(schedule_id: str) -> str:
    return f"SS_Sigmas_{schedule_id}"


def scheduler_name(schedule_id: str) -> str:
    """Scheduler dropdown name: the samplers' rule (``ss_`` + id)."""
    return HOST_PREFIX + schedule_id


# --- samplers --------------------------------------------------------------------------
def families(samplers: Dict[str, SamplerSpec] = None) -> Dict[str, List[SamplerSpec]]:
    """Registry entries grouped by family, in registration order."""
    out: Dict[str, List[SamplerSpec]] = {}
    for spec in (SAMPLERS if samplers is None else samplers).values():
        out.setdefault(spec.family, []).append(spec)
    return out


def family_title(specs: List[SamplerSpec]) -> str:
    """"SEEDS" for SEEDS-1/2/3; a one-member family keeps its sampler's title."""
    if len(specs) == 1:
        return specs[0].title
    prefix = os.path.commonprefix([s.title for s in specs]).rstrip(" -_(/")
    return prefix or specs[0].family


def dropdown_settings(spec: SamplerSpec) -> Dict[str, Any]:
    """All parameter values of the dropdown entry: defaults updated by ``spec.dropdown``."""
    return spec.resolve(**dict(spec.dropdown))


def _sampler_node(family: str, specs: List[SamplerSpec]) -> Tuple[type, str]:
    by_id = {s.id: s for s in specs}
    first = specs[0]
    settings = {s.id: dropdown_settings(s) for s in specs}
    merged: Dict[str, Any] = {}
    users: Dict[str, List[SamplerSpec]] = {}
    for s in specs:
        for p in s.params:
            merged[p.name] = merge_params(merged[p.name], p) if p.name in merged else p
            users.setdefault(p.name, []).append(s)
    if SOLVER_INPUT in merged:
        raise ValueError(f"family {family!r}: a parameter may not be called {SOLVER_INPUT!r}")

    required: Dict[str, Any] = {}
    if len(specs) > 1:
        required[SOLVER_INPUT] = (
            [s.id for s in specs],
            {
                "default": first.id,
                "tooltip": "Which solver: " + " ".join(f"{s.id} = {s.title}: {s.summary}" for s in specs),
            },
        )
    for name, p in merged.items():
        owner = first if name in settings[first.id] else users[name][0]
        note = ""
        if len(users[name]) < len(specs):
            note = "(Used by " + ", ".join(s.title for s in users[name]) + " only.)"
        required[name] = param_input(p, settings[owner.id][name], note)

    title = family_title(specs)
    description = (
        f"{title} for SamplerCustom / SamplerCustomAdvanced. "
        + " ".join(f"{s.title}: {s.summary}" for s in specs)
        + " A new node starts at the settings of the "
        + ", ".join(HOST_PREFIX + s.id for s in specs)
        + " entries of the KSampler dropdown."
    )
    input_types = {"required": required}

    class Node:
        RETURN_TYPES = ("SAMPLER",)
        OUTPUT_TOOLTIPS = (f"The {title} sampler with these settings; connect it to SamplerCustom's sampler input.",)
        FUNCTION = "get_sampler"
        CATEGORY = SAMPLER_CATEGORY
        DESCRIPTION = description
        SS_FAMILY = family
        SS_SPECS = tuple(specs)

        @classmethod
        def INPUT_TYPES(cls):
            return copy.deepcopy(input_types)

        def get_sampler(self, **kwargs):
            spec = by_id[kwargs.pop(SOLVER_INPUT, first.id)]
            values = {p.name: kwargs[p.name] for p in spec.params if p.name in kwargs}
            params = spec.resolve(**values)  # checks each value against this solver's range
            import comfy.samplers

            return (comfy.samplers.KSAMPLER(spec.function, params),)

    Node.__name__ = Node.__qualname__ = sampler_node_id(family)
    return Node, f"{title} Sampler (SS)"


# --- schedules -------------------------------------------------------------------------
def schedule_sigmas(spec: ScheduleSpec, model_sampling: Any, steps: int, denoise: float = 1.0, **params) -> torch.Tensor:
    """``steps + 1`` float32 sigmas over the model's own range, ComfyUI's denoise rule:
    a partial denoise takes the tail of a ``int(steps / denoise)``-step schedule."""
    total = int(steps)
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.FloatTensor([])
        total = int(steps / denoise)
    mt = model_type_from_model_sampling(model_sampling)
    sigmas = spec(total, mt, **params)
    return sigmas[-(int(steps) + 1):].to(torch.float32)


def _schedule_node(spec: ScheduleSpec) -> Tuple[type, str]:
    required: Dict[str, Any] = {
        "model": ("MODEL", {"tooltip": "The model whose sigma range (and flow/VE type) the schedule spans."}),
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "step": 1, "tooltip": "Number of sampling steps."}),
        "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                              "tooltip": "Below 1: the tail of a longer schedule, as ComfyUI's BasicScheduler (img2img)."}),
    }
    for p in spec.params:
        required[p.name] = param_input(p)
    input_types = {"required": required}

    class Node:
        RETURN_TYPES = ("SIGMAS",)
        OUTPUT_TOOLTIPS = ("steps + 1 noise levels ending in 0.",)
        FUNCTION = "get_sigmas"
        CATEGORY = SCHEDULE_CATEGORY
        DESCRIPTION = f"{spec.title}: {spec.summary} Also in the scheduler dropdown as {scheduler_name(spec.id)}."
        SS_SCHEDULE = spec

        @classmethod
        def INPUT_TYPES(cls):
            return copy.deepcopy(input_types)

        def get_sigmas(self, model, steps, denoise, **params):
            ms = model.get_model_object("model_sampling")
            return (schedule_sigmas(spec, ms, steps, denoise, **params),)

    Node.__name__ = Node.__qualname__ = schedule_node_id(spec.id)
    return Node, f"{spec.title} Schedule (SS)"


def build_node_classes() -> Tuple[Dict[str, type], Dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` for the current registries."""
    classes: Dict[str, type] = {}
    names: Dict[str, str] = {}
    for family, specs in families().items():
        cls, display = _sampler_node(family, specs)
        classes[cls.__name__] = cls
        names[cls.__name__] = display
    for spec in SCHEDULES.values():
        cls, display = _schedule_node(spec)
        classes[cls.__name__] = cls
        names[cls.__name__] = display
    return classes, names
