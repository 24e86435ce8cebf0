"""The one place that describes every sampler and schedule: id, function, parameters
(default, range, description), model calls per step, stochastic or not. ComfyUI nodes,
A1111 entries, README tables and the demo are generated from :data:`SAMPLERS` and
:data:`SCHEDULES`.

This module is a leaf: it imports no solver. Each solver module declares its
:class:`SamplerSpec` beside its ``sample_*`` function and calls :func:`register`;
``seeds_samplers.samplers`` imports every solver module, so importing anything from the
package fills the registry. Adding a solver touches its own module and one import line
in ``samplers/__init__.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

__all__ = ["Param", "SamplerSpec", "MenuVariant", "ScheduleSpec", "SAMPLERS", "SCHEDULES", "register",
           "register_schedule", "get", "host_name", "menu_variants", "HOST_PREFIX", "HOST_MARK", "checked"]

# Host-visible names (ComfyUI dropdown, A1111 id) are HOST_PREFIX + spec id: one rule,
# no collision with ComfyUI's seeds_2/seeds_3/er_sde/deis/ipndm or RES4LYF's deis_2m.
HOST_PREFIX = "ss_"
# Attribute set (to the spec id) on every function the host glue puts into a host's lists
# (ComfyUI's sample_<name> and scheduler handlers, the webui's schedule functions): an entry
# carrying it is ours, so registering again replaces it instead of adding a second one.
HOST_MARK = "_seeds_samplers_entry"


@dataclass(frozen=True)
class Param:
    """One user-facing parameter.

    ``choices`` makes it a combo; otherwise the kind follows the default's type
    (bool, int, float). ``minimum``/``maximum``/``step`` bound numeric inputs.
    ``allow_callable``: a combo that also takes a Python callable (ER-SDE's custom phi).
    """

    name: str
    default: Any
    description: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    choices: Optional[Tuple[str, ...]] = None
    allow_callable: bool = False

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        return "float"

    def check(self, value: Any) -> Any:
        """Validate a user value; raises ValueError naming the parameter."""
        if self.kind == "choice":
            if self.allow_callable and callable(value):
                return value
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind == "bool":
            # No truthiness: bool("False") is True. Hosts hand bools back as text (the webui
            # writes str(bool) to the infotext; override_settings and PNG Info return it).
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return bool(value)
            text = value.strip().lower() if isinstance(value, str) else None
            if text in ("true", "false"):
                return text == "true"
            raise ValueError(f"{self.name} must be True or False, got {value!r}")
        v = self._number(value)
        if (self.minimum is not None and v < self.minimum) or (self.maximum is not None and v > self.maximum):
            raise ValueError(f"{self.name} must be in [{self.minimum}, {self.maximum}], got {value!r}")
        return v

    def _number(self, value: Any) -> Union[int, float]:
        """A finite number (an integer for int parameters), also given as text; no bools."""
        try:
            v = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            v = math.nan
        if self.kind == "int":
            if not (math.isfinite(v) and v == int(v)):
                raise ValueError(f"{self.name} must be an integer, got {value!r}")
            return int(v)
        if not math.isfinite(v):
            raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        return v


F = TypeVar("F", bound=Callable[..., Any])


def checked(params: Sequence[Param]) -> Callable[[F], F]:
    """Decorator of a ``sample_*`` function: every keyword argument named by one of
    ``params`` is checked at entry by its :meth:`Param.check` (choices, ranges, integers,
    bools given as text), so each parameter's rules are written once, in its Param. The
    function keeps its explicit signature (``functools.wraps``). A value of None where the
    signature's default is None means "unset" (AMED: the predictor's setting, else the
    Param's default) and passes unchecked."""
    by_name = {p.name: p for p in params}

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)
        unknown = sorted(set(by_name) - set(sig.parameters))
        if unknown:
            raise TypeError(f"{fn.__name__} has no parameters {unknown}")
        optional = {n for n, prm in sig.parameters.items() if prm.default is None}

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            for name, value in bound.arguments.items():
                if name in by_name and not (value is None and name in optional):
                    bound.arguments[name] = by_name[name].check(value)
            return fn(*bound.args, **bound.kwargs)

        return run  # type: ignore[return-value]

    return wrap


def resolve_params(owner: str, params: Sequence[Param], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Defaults of ``params`` updated by ``overrides``, each checked against its Param;
    an unknown name raises ``ValueError`` naming ``owner``."""
    by_name = {p.name: p for p in params}
    out = {p.name: p.default for p in params}
    for k, v in overrides.items():
        if k not in by_name:
            raise ValueError(f"{owner} has no parameter {k!r}; it has {list(by_name)}")
        out[k] = by_name[k].check(v)
    return out


@dataclass(frozen=True)
class MenuVariant:
    """A further menu entry of a registered sampler: the same solver at other settings, as
    k-diffusion lists dpmpp_2m_sde beside dpmpp_3m_sde. It has no node of its own (the
    sampler's node reaches every setting) and no row of its own in the parameter reference.

    Attributes:
        id: the entry's id (hosts list :func:`host_name` of it); unique among samplers.
        title: display name.
        summary: one line for menus and the README: what differs from the sampler's own entry.
        menu: the parameter values that differ from the sampler's own menu entry.
    """

    id: str
    title: str
    summary: str
    menu: Mapping[str, Any]


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler.

    Attributes:
        id: stable identifier (``seeds_2``); hosts show :func:`host_name` of it.
        function: the k-diffusion-style ``sample_*`` function.
        family: node family (one SamplerCustom node per family).
        title: display name.
        summary: one line for menus and the README.
        params: user parameters, in display order.
        calls_per_step: model calls per step, an int or a function of the parameters.
        stochastic: whether it injects noise, a bool or a function of the parameters.
        menu: parameter values of the menu entry (``ss_<id>`` in ComfyUI's dropdown,
            ``<title> (SS)`` in the webui's sampler menu): the best general settings, from
            the benchmark; unspecified ones take the parameter default.
        variants: further menu entries of this solver at other settings
            (:class:`MenuVariant`, :func:`menu_variants`).
    """

    id: str
    function: Callable
    family: str
    title: str
    summary: str
    params: Tuple[Param, ...]
    calls_per_step: Union[int, Callable[[Mapping[str, Any]], int]] = 1
    stochastic: Union[bool, Callable[[Mapping[str, Any]], bool]] = False
    menu: Mapping[str, Any] = field(default_factory=dict)
    variants: Tuple[MenuVariant, ...] = ()

    def defaults(self) -> Dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, **overrides: Any) -> Dict[str, Any]:
        """Defaults updated by ``overrides``, each value checked against its Param."""
        return resolve_params(self.id, self.params, overrides)

    def menu_settings(self) -> Dict[str, Any]:
        """Every parameter value of the menu entry: defaults updated by :attr:`menu`."""
        return self.resolve(**dict(self.menu))

    def calls(self, **params: Any) -> int:
        p = self.resolve(**params)
        c = self.calls_per_step
        return c(p) if callable(c) else c

    def is_stochastic(self, **params: Any) -> bool:
        p = self.resolve(**params)
        s = self.stochastic
        return s(p) if callable(s) else s

    @property
    def host_name(self) -> str:
        return host_name(self.id)


SAMPLERS: Dict[str, SamplerSpec] = {}


def register(spec: SamplerSpec) -> SamplerSpec:
    if spec.id in SAMPLERS and SAMPLERS[spec.id] is not spec:
        raise ValueError(f"sampler id {spec.id!r} registered twice")
    others = [s for s in SAMPLERS.values() if s is not spec]
    variant_ids = {v.id for s in others for v in s.variants}
    if spec.id in variant_ids:
        raise ValueError(f"sampler id {spec.id!r} is taken by a menu variant")
    taken = {s.id for s in others} | variant_ids | {spec.id}
    for entry in menu_variants(spec):
        if entry.id in taken:
            raise ValueError(f"menu variant id {entry.id!r} of {spec.id!r} is taken")
        taken.add(entry.id)
        entry.menu_settings()  # a variant's settings are checked when it is declared
    SAMPLERS[spec.id] = spec
    return spec


def menu_variants(spec: SamplerSpec) -> List[SamplerSpec]:
    """The further menu entries of ``spec`` as specs of their own (same function, node family
    and parameters; their :attr:`SamplerSpec.menu` = the sampler's updated by the variant's).
    They are not in :data:`SAMPLERS`: no node, parameter table or CFG++ form of their own."""
    return [dataclasses.replace(spec, id=v.id, title=v.title, summary=v.summary, menu={**spec.menu, **v.menu},
                                variants=()) for v in spec.variants]


def get(sampler_id: str) -> SamplerSpec:
    try:
        return SAMPLERS[sampler_id]
    except KeyError:
        raise ValueError(f"unknown sampler {sampler_id!r}; known: {sorted(SAMPLERS)}") from None


def host_name(spec_id: str) -> str:
    """The name hosts list a sampler or schedule id under (``ss_seeds_2``, ``ss_logsnr_uniform``)."""
    return HOST_PREFIX + spec_id


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule over a model's own sigma range: ``function(n, model_type, **params)``
    returns n + 1 float64 sigmas ending at 0."""

    id: str
    title: str
    summary: str
    function: Callable[..., Any]
    params: Tuple[Param, ...] = ()

    def __call__(self, n: int, model_type: Any, **params: Any) -> Any:
        return self.function(n, model_type, **resolve_params(f"schedule {self.id}", self.params, params))

    @property
    def host_name(self) -> str:
        return host_name(self.id)


SCHEDULES: Dict[str, ScheduleSpec] = {}


def register_schedule(spec: ScheduleSpec) -> ScheduleSpec:
    if spec.id in SCHEDULES and SCHEDULES[spec.id] is not spec:
        raise ValueError(f"schedule id {spec.id!r} registered twice")
    SCHEDULES[spec.id] = spec
    return spec
