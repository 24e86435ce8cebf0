"""Registry parameters as ComfyUI input specifications (classic node API).

Pure Python: nothing here imports ComfyUI, so the node definitions (and the workflow
tests built on them) can be inspected without a host.

Numbers are shown at their step's precision. ComfyUI's frontend (1.27) draws a FLOAT
widget with ``toFixed(p)``, ``p = max(0, -floor(log10(step)))``, rounds every edited
value to ``10**-p`` (even when the input says ``round: False``), and shows the raw
``default`` in the node search preview. So each widget gets

* a step whose multiples print exactly at that precision (0.01, 0.1, 1, 0.05, 0.5; a
  registry step such as 0.25, which would print as 0.3, becomes 0.01, so every
  multiple of it stays reachable and prints exactly),
* ``round`` equal to that step, and
* a default rounded to the step's decimals: r1 = 1/3 is shown (and stored in a saved
  workflow) as 0.33.

A rounded default still means the exact value: :func:`exact_values` maps the shown
default (0.33 for r1 = 1/3) back to the exact one when the node runs, so a new node and
the menu entry run the same solver. Any other value runs as entered.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

# ComfyUI's own bounds for unbounded widgets.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
FLOAT_MIN, FLOAT_MAX = -1.0e6, 1.0e6
DEFAULT_FLOAT_STEP = 0.01

__all__ = ["param_input", "merge_params", "widget_step", "decimals", "shown", "exact_values", "float_steps",
           "INT_MIN", "INT_MAX", "FLOAT_MIN", "FLOAT_MAX"]


def decimals(step: float) -> int:
    """Digits after the point that ComfyUI's frontend shows for a FLOAT step."""
    return max(0, -math.floor(math.log10(step)))


def widget_step(step: Optional[float]) -> float:
    """A step the frontend prints exactly: ``step`` if it has no more decimals than the
    frontend shows for it, else the power of ten of its last digit (0.25, shown with one
    decimal, becomes 0.01: every multiple of 0.25 is a multiple of it)."""
    s = float(step) if step else DEFAULT_FLOAT_STEP
    if s <= 0 or not math.isfinite(s):
        raise ValueError(f"a float step must be positive, got {step!r}")
    d = decimals(s)
    if abs(round(s, d) - s) <= 1e-12 * max(1.0, s):
        return round(s, d)
    for extra in range(d + 1, d + 12):
        if abs(round(s, extra) - s) <= 1e-12 * max(1.0, s):
            return 10.0 ** -extra
    return 10.0 ** -(d + 12)


def shown(value: float, step: float) -> float:
    """``value`` as the frontend shows it for a widget with this step."""
    return round(float(value), decimals(step))


def param_input(param: Any, default: Any = None, note: str = "") -> Tuple[Any, dict]:
    """``(type, options)`` for one :class:`~seeds_samplers.samplers.registry.Param`.

    ``default`` overrides the parameter's own default (a node starts at its menu
    entry's settings); ``note`` is appended to the tooltip.
    """
    value = param.default if default is None else default
    tooltip = param.description + (f" {note}" if note else "")
    kind = param.kind
    if kind == "choice":
        return (list(param.choices), {"default": value, "tooltip": tooltip})
    if kind == "bool":
        return ("BOOLEAN", {"default": bool(value), "tooltip": tooltip})
    if kind == "int":
        opts = {
            "default": int(value),
            "min": int(param.minimum) if param.minimum is not None else INT_MIN,
            "max": int(param.maximum) if param.maximum is not None else INT_MAX,
            "step": int(param.step) if param.step else 1,
            "tooltip": tooltip,
        }
        return ("INT", opts)
    step = widget_step(param.step)
    lo = float(param.minimum) if param.minimum is not None else FLOAT_MIN
    hi = float(param.maximum) if param.maximum is not None else FLOAT_MAX
    exact = float(value)
    display = min(max(shown(exact, step), lo), hi)
    if display != exact:
        tooltip += f" (The default {display:.{decimals(step)}f} stands for {_exact_text(exact)}, the exact value it runs.)"
    opts = {"default": display, "min": lo, "max": hi, "step": step, "round": step, "tooltip": tooltip}
    return ("FLOAT", opts)


def _exact_text(x: float) -> str:
    frac = Fraction(x).limit_denominator(1000)
    return f"{frac.numerator}/{frac.denominator}" if float(frac) == x else repr(x)


def exact_values(values: Mapping[str, Any], exact: Mapping[str, Any], steps: Mapping[str, float]) -> Dict[str, Any]:
    """``values`` with each float equal to its shown default replaced by the exact one.

    ``exact`` maps a parameter name to the node's exact default (e.g. r1 = 1/3) and
    ``steps`` to its widget step: 0.33 becomes 1/3; 0.34 or 0.3333 run as entered.
    """
    out = dict(values)
    for name, step in steps.items():
        if name not in out or name not in exact:
            continue
        v, e = out[name], exact[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or isinstance(e, bool):
            continue
        if v != e and v == shown(e, step):
            out[name] = e
    return out


def float_steps(params: Iterable[Any]) -> Dict[str, float]:
    """Widget step of every float parameter."""
    return {p.name: widget_step(p.step) for p in params if p.kind == "float"}


def merge_params(first: Any, other: Any) -> Any:
    """One widget for a parameter that several solvers of a family share: the first
    definition, with the numeric range widened to cover the others."""
    if first.kind != other.kind:
        raise ValueError(
            f"parameter {first.name!r} has different kinds within one family "
            f"({first.kind} and {other.kind}); give one of them another name"
        )
    if first.kind == "choice":
        return _replace(first, choices=tuple(dict.fromkeys(first.choices + other.choices)))
    if first.kind == "bool":
        return first
    lo = _widen(first.minimum, other.minimum, min)
    hi = _widen(first.maximum, other.maximum, max)
    step = first.step if other.step is None else (other.step if first.step is None else min(first.step, other.step))
    return _replace(first, minimum=lo, maximum=hi, step=step)


def _widen(a: Optional[float], b: Optional[float], pick) -> Optional[float]:
    if a is None or b is None:
        return None
    return pick(a, b)


def _replace(param: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(param, **changes)
