"""Node classes generated from the registries (classic ComfyUI node API).

* one SAMPLER node per registered sampler (``SS_Sampler_<id>``), with one widget per
  parameter of that sampler only (range, step and tooltip from its ``Param``) and its
  menu entry's settings (:meth:`SamplerSpec.menu_settings`) as defaults, so a new node runs
  exactly what ``ss_<id>`` in the KSampler dropdown runs; it returns
  ``comfy.samplers.KSAMPLER(fn, params)`` for SamplerCustom(Advanced), ``fn`` being the
  solver with the model type read from ComfyUI's objects (:func:`.model_type.comfy_solver`).
  A hand-written module extends one sampler's node through :func:`extend_sampler_node`
  (extra optional inputs and what they run: the AMED predictor, ``nodes/amed.py``);
* one SIGMAS node per schedule in ``SCHEDULES`` with ``model``, ``steps``, ``denoise``
  and the schedule's own parameters;
* CFG++ (``cfg_pp``, samplers/cfg_pp.py): the unconditional prediction is captured as
  ComfyUI's own ``*_cfg_pp`` samplers get it (:func:`with_uncond_capture`);
* for saved workflows of 0.1.0: the combined node of each family in
  :data:`LEGACY_FAMILY_NODES` (``SS_Sampler_seeds``, with a ``solver`` combo), kept as a
  hidden ``DEPRECATED`` node that still loads and runs.

Saved workflows store widget values by position, so the inputs of the nodes 0.1.0
shipped keep their 0.1.0 order (:data:`RELEASED_WIDGETS`) and parameters added to the
registry since then come after them.

Nothing here imports ComfyUI at module level: ``comfy`` is imported when a node runs,
so the definitions can be inspected (and the example workflows checked) without a host.
No sampler or schedule is named here except in the two 0.1.0 compatibility tables;
adding one to a registry adds its node.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from ..samplers.model_types import model_type_from_model_sampling
from ..samplers.registry import SAMPLERS, SamplerSpec
from ..samplers.schedules import SCHEDULES, ScheduleSpec
from .model_type import comfy_solver
from .widgets import exact_values, float_steps, merge_params, param_input

__all__ = [
    "SAMPLER_CATEGORY",
    "SCHEDULE_CATEGORY",
    "LEGACY_FAMILY_NODES",
    "RELEASED_WIDGETS",
    "families",
    "family_title",
    "sampler_node_id",
    "sampler_title",
    "schedule_node_id",
    "schedule_title",
    "NodeExtension",
    "extend_sampler_node",
    "schedule_sigmas",
    "build_node_classes",
    "UncondCapture",
    "with_uncond_capture",
]

# Beside ComfyUI's own SamplerER_SDE / KarrasScheduler nodes.
SAMPLER_CATEGORY = "sampling/custom_sampling/samplers"
SCHEDULE_CATEGORY = "sampling/custom_sampling/schedulers"
SOLVER_INPUT = "solver"

# --- 0.1.0 compatibility ------------------------------------------------------------------
# Families that 0.1.0 showed as one combined node (``SS_Sampler_<family>`` with a solver
# combo); the node stays, hidden from search, so workflows saved with it keep loading.
LEGACY_FAMILY_NODES: Tuple[str, ...] = ("seeds",)
# Input order of every node 0.1.0 shipped: these come first, in this order, so saved
# widget values (stored by position) land on the same widgets; newer inputs follow.
RELEASED_WIDGETS: Dict[str, Tuple[str, ...]] = {
    "SS_Sampler_seeds": ("solver", "eta", "s_noise", "noise_type", "prediction", "stop_at_sigma_min",
                         "r", "variant", "r1", "r2"),
    "SS_Sampler_er_sde": ("order", "noise_scale_function", "eta", "s_noise", "quadrature", "noise_type",
                          "stop_at_sigma_min"),
    "SS_Sampler_deis": ("variant", "order", "tau_map", "lower_order_final", "stop_at_sigma_min"),
    "SS_Sampler_ipndm": ("order", "variant", "stop_at_sigma_min"),
    "SS_Sigmas_logsnr_uniform": ("model", "steps", "denoise"),
    "SS_Sigmas_vp_time_uniform": ("model", "steps", "denoise", "rho"),
    "SS_Sigmas_deis_quadratic": ("model", "steps", "denoise", "kappa"),
    "SS_Sigmas_edm_rho": ("model", "steps", "denoise", "rho"),
}


def _released_order(node_id: str, names: Iterable[str]) -> List[str]:
    """``names`` with the node's 0.1.0 inputs first, in their 0.1.0 order."""
    names = list(names)
    first = [n for n in RELEASED_WIDGETS.get(node_id, ()) if n in names]
    return first + [n for n in names if n not in first]


# --- naming: one rule for everything the pack adds to ComfyUI ------------------------
def sampler_node_id(sampler_id: str) -> str:
    """Node id of a sampler (or, for :data:`LEGACY_FAMILY_NODES`, of a family)."""
    return f"SS_Sampler_{sampler_id}"


def sampler_title(spec: SamplerSpec) -> str:
    """Display name of a sampler's node, e.g. ``SEEDS-2 Sampler (SS)``."""
    return f"{spec.title} Sampler (SS)"


def schedule_node_id(schedule_id: str) -> str:
    return f"SS_Sigmas_{schedule_id}"


def schedule_title(spec: ScheduleSpec) -> str:
    """Display name of a schedule's node, e.g. ``logSNR uniform Schedule (SS)``."""
    return f"{spec.title} Schedule (SS)"


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


# --- extensions of generated sampler nodes ----------------------------------------------
@dataclass(frozen=True)
class NodeExtension:
    """What a hand-written module adds to one sampler's generated node.

    Attributes:
        inputs: optional inputs (name -> ComfyUI input spec) after the generated widgets.
        description: a sentence appended to the node's description.
        sampler: ``sampler(spec, widgets, extras)`` -> the function ``KSAMPLER`` runs (with no
            extra options), or None to run the solver with the widget values as usual;
            ``widgets`` are the node's widget values as ComfyUI passed them, ``extras`` the
            extension's inputs that are connected.
    """

    inputs: Mapping[str, Any]
    description: str
    sampler: Callable[[SamplerSpec, Dict[str, Any], Dict[str, Any]], Optional[Callable]]


# sampler id -> its node's extension; read when the node classes are built
SAMPLER_NODE_EXTENSIONS: Dict[str, NodeExtension] = {}


def extend_sampler_node(sampler_id: str, extension: NodeExtension) -> None:
    """Give the generated node of ``sampler_id`` the ``extension`` (one per sampler: a
    module imported again replaces its own). The node keeps its id, widgets and defaults,
    so saved workflows load unchanged."""
    if sampler_id not in SAMPLERS:
        raise ValueError(f"no sampler {sampler_id!r} to extend; known: {sorted(SAMPLERS)}")
    clash = set(extension.inputs) & {p.name for p in SAMPLERS[sampler_id].params}
    if clash:
        raise ValueError(f"extension inputs {sorted(clash)} are parameters of {sampler_id!r}")
    SAMPLER_NODE_EXTENSIONS[sampler_id] = extension


def _run_values(spec: SamplerSpec, settings: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The solver's parameters from a node's inputs: its own ones only, shown defaults
    (0.33) mapped back to the exact ones (1/3), each checked against its range."""
    values = {p.name: kwargs[p.name] for p in spec.params if p.name in kwargs}
    return spec.resolve(**exact_values(values, settings, float_steps(spec.params)))


class UncondCapture:
    """The unconditional prediction of ComfyUI's latest model call, for CFG++: installed as a
    ``sampler_post_cfg_function`` (ComfyUI hands it ``uncond_denoised`` after combining
    cond and uncond, and takes back ``denoised`` unchanged). Satisfies the solvers'
    :class:`~seeds_samplers.samplers.cfg_pp.UncondSource`."""

    def __init__(self) -> None:
        self.last_uncond: Optional[torch.Tensor] = None

    def __call__(self, args: Dict[str, Any]) -> torch.Tensor:
        self.last_uncond = args["uncond_denoised"]
        return args["denoised"]


def with_uncond_capture(sample: Callable, settings: Optional[Mapping[str, Any]] = None) -> Callable:
    """``sample`` (a :func:`.model_type.comfy_solver`) that, when it runs with ``cfg_pp`` on
    (``settings`` updated by the call's options), gets ComfyUI's unconditional prediction the
    way ComfyUI's ``*_cfg_pp`` samplers do: a post-CFG function added to a copy of
    ``extra_args["model_options"]`` with the cfg1 optimisation disabled (at CFG 1 ComfyUI
    otherwise skips the unconditional pass), passed to the solver as ``uncond``."""
    base = dict(settings or {})

    def run(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        if not {**base, **options}.get("cfg_pp", False):
            return sample(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)
        import comfy.model_patcher

        capture = UncondCapture()
        extra_args = dict(extra_args or {})
        model_options = dict(extra_args.get("model_options", {}))  # the caller's dict stays as it was
        extra_args["model_options"] = comfy.model_patcher.set_model_options_post_cfg_function(
            model_options, capture, disable_cfg1_optimization=True)
        return sample(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, uncond=capture,
                      **options)

    run.__wrapped__ = getattr(sample, "__wrapped__", sample)  # which solver a KSAMPLER or menu entry runs
    run.__name__ = run.__qualname__ = getattr(sample, "__name__", "sample")
    return run


def _ksampler(function: Callable, params: Dict[str, Any]) -> Tuple[Any]:
    import comfy.samplers

    return (comfy.samplers.KSAMPLER(function, params),)


def _sampler_node(spec: SamplerSpec) -> Tuple[type, str]:
    """The node of one sampler: its own parameters, defaults = its menu entry's settings;
    plus the inputs of its :class:`NodeExtension`, if one is registered."""
    node_id = sampler_node_id(spec.id)
    settings = spec.menu_settings()
    extension = SAMPLER_NODE_EXTENSIONS.get(spec.id)
    by_name = {p.name: p for p in spec.params}
    required = {name: param_input(by_name[name], settings[name])
                for name in _released_order(node_id, by_name)}
    input_types: Dict[str, Any] = {"required": required}
    if extension is not None and extension.inputs:
        input_types["optional"] = dict(extension.inputs)
    changed = dict(spec.menu)
    description = (
        f"{spec.title}: {spec.summary} A SAMPLER for SamplerCustom / SamplerCustomAdvanced. "
        f"A new node runs exactly what {spec.host_name} in the KSampler dropdown runs"
        + (" (" + ", ".join(f"{k} = {v}" for k, v in changed.items()) + ")" if changed else "")
        + "; every input acts on this solver."
        + (" " + extension.description if extension is not None else "")
    )
    solver = with_uncond_capture(comfy_solver(spec.function))

    class Node:
        RETURN_TYPES = ("SAMPLER",)
        OUTPUT_TOOLTIPS = (f"The {spec.title} sampler with these settings; connect it to SamplerCustom's sampler input.",)
        FUNCTION = "get_sampler"
        CATEGORY = SAMPLER_CATEGORY
        DESCRIPTION = description
        SS_SPEC = spec

        @classmethod
        def INPUT_TYPES(cls):
            return copy.deepcopy(input_types)

        def get_sampler(self, **kwargs):
            if extension is not None:
                extras = {k: kwargs.pop(k) for k in list(kwargs) if k in extension.inputs}
                function = extension.sampler(spec, kwargs, {k: v for k, v in extras.items() if v is not None})
                if function is not None:
                    return _ksampler(function, {})
            return _ksampler(solver, _run_values(spec, settings, kwargs))

    Node.__name__ = Node.__qualname__ = node_id
    return Node, sampler_title(spec)


def _legacy_family_node(family: str, specs: List[SamplerSpec]) -> Tuple[type, str]:
    """0.1.0's combined node of a family (``solver`` combo + every member's parameters),
    hidden from search (``DEPRECATED``) but loading and running as before."""
    node_id = sampler_node_id(family)
    by_id = {s.id: s for s in specs}
    first = specs[0]
    settings = {s.id: s.menu_settings() for s in specs}
    merged: Dict[str, Any] = {}
    users: Dict[str, List[SamplerSpec]] = {}
    for s in specs:
        for p in s.params:
            merged[p.name] = merge_params(merged[p.name], p) if p.name in merged else p
            users.setdefault(p.name, []).append(s)
    if SOLVER_INPUT in merged:
        raise ValueError(f"family {family!r}: a parameter may not be called {SOLVER_INPUT!r}")

    required: Dict[str, Any] = {}
    for name in _released_order(node_id, [SOLVER_INPUT] + list(merged)):
        if name == SOLVER_INPUT:
            required[name] = (
                [s.id for s in specs],
                {"default": first.id,
                 "tooltip": "Which solver: " + " ".join(f"{s.id} = {s.title}: {s.summary}" for s in specs)},
            )
            continue
        owner = first if name in settings[first.id] else users[name][0]
        note = ""
        if len(users[name]) < len(specs):
            note = "(Used by " + ", ".join(s.title for s in users[name]) + " only.)"
        required[name] = param_input(merged[name], settings[owner.id][name], note)

    title = family_title(specs)
    replacements = ", ".join(sampler_title(s) for s in specs)
    description = (
        f"Deprecated: the combined {title} node of version 0.1.0, kept so that saved workflows load. "
        f"Use {replacements} instead: each has only its own inputs and starts at its menu entry's settings."
    )
    input_types = {"required": required}

    class Node:
        RETURN_TYPES = ("SAMPLER",)
        OUTPUT_TOOLTIPS = (f"The chosen {title} sampler; connect it to SamplerCustom's sampler input.",)
        FUNCTION = "get_sampler"
        CATEGORY = SAMPLER_CATEGORY
        DESCRIPTION = description
        DEPRECATED = True
        SS_FAMILY = family
        SS_SPECS = tuple(specs)

        @classmethod
        def INPUT_TYPES(cls):
            return copy.deepcopy(input_types)

        def get_sampler(self, **kwargs):
            solver = kwargs.pop(SOLVER_INPUT, first.id)
            if solver not in by_id:
                raise ValueError(f"{node_id}: solver must be one of {list(by_id)}, got {solver!r}")
            spec = by_id[solver]
            return _ksampler(with_uncond_capture(comfy_solver(spec.function)),
                             _run_values(spec, settings[spec.id], kwargs))

    Node.__name__ = Node.__qualname__ = node_id
    return Node, f"{title} Sampler (deprecated) (SS)"


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
    node_id = schedule_node_id(spec.id)
    fixed: Dict[str, Any] = {
        "model": ("MODEL", {"tooltip": "The model whose sigma range (and flow/VE type) the schedule spans."}),
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "step": 1, "tooltip": "Number of sampling steps."}),
        "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.01,
                              "tooltip": "Below 1: the tail of a longer schedule, as ComfyUI's BasicScheduler (img2img)."}),
    }
    by_name = {p.name: p for p in spec.params}
    clash = set(fixed) & set(by_name)
    if clash:
        raise ValueError(f"schedule {spec.id!r}: parameter names {sorted(clash)} are the node's own inputs")
    exact = {p.name: p.default for p in spec.params}
    required = {name: fixed[name] if name in fixed else param_input(by_name[name])
                for name in _released_order(node_id, list(fixed) + list(by_name))}
    input_types = {"required": required}

    class Node:
        RETURN_TYPES = ("SIGMAS",)
        OUTPUT_TOOLTIPS = ("steps + 1 noise levels ending in 0.",)
        FUNCTION = "get_sigmas"
        CATEGORY = SCHEDULE_CATEGORY
        DESCRIPTION = f"{spec.title}: {spec.summary} Also in the scheduler dropdown as {spec.host_name}."
        SS_SCHEDULE = spec

        @classmethod
        def INPUT_TYPES(cls):
            return copy.deepcopy(input_types)

        def get_sigmas(self, model, steps, denoise, **params):
            ms = model.get_model_object("model_sampling")
            return (schedule_sigmas(spec, ms, steps, denoise, **exact_values(params, exact, float_steps(spec.params))),)

    Node.__name__ = Node.__qualname__ = node_id
    return Node, schedule_title(spec)


def build_node_classes() -> Tuple[Dict[str, type], Dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` for the current registries:
    one node per sampler (with the extensions registered so far) and per schedule, then the
    deprecated 0.1.0 family nodes."""
    classes: Dict[str, type] = {}
    names: Dict[str, str] = {}

    def add(cls: type, display: str) -> None:
        if cls.__name__ in classes:
            raise ValueError(f"two nodes would be called {cls.__name__!r}")
        classes[cls.__name__] = cls
        names[cls.__name__] = display

    for spec in SAMPLERS.values():
        add(*_sampler_node(spec))
    for spec in SCHEDULES.values():
        add(*_schedule_node(spec))
    for family, specs in families().items():
        if family in LEGACY_FAMILY_NODES and len(specs) > 1 and sampler_node_id(family) not in classes:
            add(*_legacy_family_node(family, specs))
    return classes, names
