"""Names, settings and infotext of the webui entries, generated from the registry.

Pure Python: nothing here imports a webui, so the rules can be tested without a host.

* Sampler menu label: ``<title> (SS)`` ("SEEDS-2 (SS)", "DEIS (SS)"): readable, the same
  on every host (so an infotext pastes on any of them), distinct from the hosts' own
  "DEIS", "IPNDM", "ER SDE", "SEEDS 2 DP", ... and never ending in a scheduler word
  (the webui strips a trailing " Karras", " Uniform", ... from sampler names). The
  alias is the ComfyUI name (``ss_<id>``).
* Schedule: name ``ss_<id>`` (:attr:`ScheduleSpec.host_name`), label ``<title> (SS)``.
* Settings: one option per parameter, key ``seeds_samplers_<id>_<param>`` (schedules:
  ``seeds_samplers_schedule_<id>_<param>``), default = the menu entry's setting
  (:meth:`SamplerSpec.menu_settings`), range and help text from the
  :class:`~seeds_samplers.samplers.registry.Param`.
* Infotext: ``<short title> <param>: <value>`` ("SEEDS-2 eta: 1.0"), where the short
  title keeps the characters an infotext key may hold (letters, digits, ``_ - /`` and
  spaces). Each option names its infotext key, so the webui's paste / "Send to" /
  PNG Info turn the text back into the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ..samplers.registry import Param, SamplerSpec, ScheduleSpec

__all__ = [
    "LABEL_SUFFIX", "SECTION", "OPTION_PREFIX", "OWNER_OPTION", "SCHEDULE_SETTING", "Setting",
    "sampler_label", "schedule_label", "infotext_title", "sampler_settings",
    "schedule_settings", "values_from_options", "infotext_fields", "cast_like_webui",
    "values_from_infotext", "ends_with_scheduler_word", "format_value", "check_unique",
]

LABEL_SUFFIX = " (SS)"
SECTION = ("seeds_samplers", "SEEDS Samplers")
OPTION_PREFIX = "seeds_samplers_"
# Key in SamplerData.options marking an entry as ours (value: the sampler id); a scalar,
# as every option value must be (a list or dict breaks /sdapi/v1/samplers for all samplers).
OWNER_OPTION = "seeds_samplers"

# Forge Classic's (A1111 1.8's) "Scheduler type" setting, where a webui without a schedule
# menu keeps the schedule (infotext "Schedule type")
SCHEDULE_SETTING = "k_sched_type"

_INFOTEXT_KEY_CHARS = re.compile(r"[^\w \-/]")


def sampler_label(spec: SamplerSpec) -> str:
    return spec.title + LABEL_SUFFIX


def schedule_label(spec: ScheduleSpec) -> str:
    return spec.title + LABEL_SUFFIX


def infotext_title(title: str) -> str:
    """The title without parenthesised parts and characters an infotext key cannot hold
    ("EDM (rho)" -> "EDM")."""
    t = re.sub(r"\([^)]*\)", " ", title)
    t = _INFOTEXT_KEY_CHARS.sub(" ", t)
    return " ".join(t.split())


@dataclass(frozen=True)
class Setting:
    """One webui option generated from a Param."""

    key: str  # shared.opts key
    infotext: str  # infotext field name
    label: str  # label in Settings
    param: Param
    default: Any
    owner: str  # "SEEDS-2 (SS)" / "logSNR uniform (SS)"

    @property
    def help(self) -> str:
        return self.param.description

    def component(self) -> Tuple[str, Dict[str, Any]]:
        """``(kind, args)``: kind is "checkbox", "dropdown", "slider" or "number"."""
        p = self.param
        if p.kind == "bool":
            return "checkbox", {}
        if p.kind == "choice":
            return "dropdown", {"choices": list(p.choices)}
        if p.minimum is not None and p.maximum is not None:
            step = p.step if p.step else (1 if p.kind == "int" else 0.01)
            return "slider", {"minimum": p.minimum, "maximum": p.maximum, "step": step}
        return "number", {"precision": 0} if p.kind == "int" else {}


def _settings(params: Iterable[Param], values: Mapping[str, Any], key_prefix: str, title: str,
              owner: str) -> List[Setting]:
    short = infotext_title(title)
    return [
        Setting(
            key=f"{key_prefix}{p.name}",
            infotext=f"{short} {p.name}",
            label=f"{owner}: {p.name}",
            param=p,
            default=values[p.name],
            owner=owner,
        )
        for p in params
    ]


def sampler_settings(spec: SamplerSpec) -> List[Setting]:
    return _settings(spec.params, spec.menu_settings(), f"{OPTION_PREFIX}{spec.id}_", spec.title,
                     sampler_label(spec))


def schedule_settings(spec: ScheduleSpec) -> List[Setting]:
    defaults = {p.name: p.default for p in spec.params}
    return _settings(spec.params, defaults, f"{OPTION_PREFIX}schedule_{spec.id}_", spec.title,
                     schedule_label(spec))


def values_from_options(settings: List[Setting], opts: Any) -> Dict[str, Any]:
    """Current values of ``settings`` from the webui's ``shared.opts`` (a missing option
    takes its default), each checked against its Param.

    Raises ValueError naming the setting for a value out of range or not a choice.
    """
    out = {}
    for s in settings:
        raw = getattr(opts, s.key, s.default)
        if raw is None:
            raw = s.default
        try:
            out[s.param.name] = s.param.check(raw)
        except (TypeError, ValueError) as e:
            raise ValueError(f"SEEDS Samplers setting {s.key!r} ({s.label}): {e}") from None
    return out


def format_value(value: Any) -> Any:
    """A value as written to the infotext: floats in full precision (``repr``), so that
    reading the text back gives the same float."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def infotext_fields(settings: List[Setting], values: Mapping[str, Any]) -> Dict[str, Any]:
    return {s.infotext: format_value(values[s.param.name]) for s in settings}


def cast_like_webui(default: Any, text: Any) -> Any:
    """What the webui's ``Options.cast_value`` makes of an infotext value for an option
    whose default is ``default`` (the type of the default; "False" is False)."""
    if text is None:
        return None
    kind = type(default)
    if kind is bool and text == "False":
        return False
    return kind(text)


def values_from_infotext(settings: List[Setting], fields: Mapping[str, Any]) -> Dict[str, Any]:
    """``{option key: value}`` for every setting named in parsed infotext ``fields``."""
    out = {}
    for s in settings:
        if s.infotext in fields:
            out[s.key] = s.param.check(cast_like_webui(s.default, fields[s.infotext]))
    return out


def ends_with_scheduler_word(label: str, scheduler_words: Iterable[str]) -> Optional[str]:
    """The scheduler word ``label`` ends with (compared case-insensitively, as reForge
    does), or None. The webui would strip it and pick another sampler."""
    low = label.lower()
    for w in scheduler_words:
        if w and low.endswith(" " + w.lower()):
            return w
    return None


def check_unique(names: Iterable[str], taken: Iterable[str]) -> List[str]:
    """Names of ours that equal (case-insensitively) a name already taken."""
    low = {t.lower() for t in taken}
    return [n for n in names if n.lower() in low]
