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

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Param", "SamplerSpec", "ScheduleSpec", "SAMPLERS", "SCHEDULES", "register", "register_schedule",
           "get", "host_name", "HOST_PREFIX"]

# Host-visible names (ComfyUI dropdown, A1111 id) are HOST_PREFIX + spec id: one rule,
# no collision with ComfyUI's seeds_2/seeds_3/er_sde/deis/ipndm or RES4LYF's deis_2m.
HOST_PREFIX = "ss_"


@dataclass(frozen=True)
class Param:
    """One user-facing parameter.

    ``choices`` makes it a combo; otherwise the kind follows the default's type
    (bool, int, float). ``minimum``/``maximum``/``step`` bound numeric inputs.
    """

    name: str
    default: Any
    description: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    choices: Optional[Tuple[str, ...]] = None

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
        v = int(value) if self.kind == "int" else float(value)
        if (self.minimum is not None and v < self.minimum) or (self.maximum is not None and v > self.maximum):
            raise ValueError(f"{self.name} must be in [{self.minimum}, {self.maximum}], got {value!r}")
        return v


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
        dropdown: parameter values used for the host dropdown entry (the best general
            settings, from the benchmark); unspecified ones take the function default.
    """

    id: str
    function: Callable
    family: str
    title: str
    summary: str
    params: Tuple[Param, ...]
    calls_per_step: Union[int, Callable[[Mapping[str, Any]], int]] = 1
    stochastic: Union[bool, Callable[[Mapping[str, Any]], bool]] = False
    dropdown: Mapping[str, Any] = field(default_factory=dict)

    def defaults(self) -> Dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, **overrides: Any) -> Dict[str, Any]:
        """Defaults updated by ``overrides``, each value checked against its Param."""
        return resolve_params(self.id, self.params, overrides)

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
    SAMPLERS[spec.id] = spec
    return spec


def get(sampler_id: str) -> SamplerSpec:
    try:
        return SAMPLERS[sampler_id]
    except KeyError:
        raise ValueError(f"unknown sampler {sampler_id!r}; known: {sorted(SAMPLERS)}") from None


def host_name(sampler_id: str) -> str:
    return HOST_PREFIX + sampler_id


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


SCHEDULES: Dict[str, ScheduleSpec] = {}


def register_schedule(spec: ScheduleSpec) -> ScheduleSpec:
    if spec.id in SCHEDULES and SCHEDULES[spec.id] is not spec:
        raise ValueError(f"schedule id {spec.id!r} registered twice")
    SCHEDULES[spec.id] = spec
    return spec
