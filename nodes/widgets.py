"""Registry parameters as ComfyUI input specifications (classic node API).

Pure Python: nothing here imports ComfyUI, so the node definitions (and the workflow
tests built on them) can be inspected without a host.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

# ComfyUI's own bounds for unbounded widgets.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
FLOAT_MIN, FLOAT_MAX = -1.0e6, 1.0e6


def param_input(param: Any, default: Any = None, note: str = "") -> Tuple[Any, dict]:
    """``(type, options)`` for one :class:`~seeds_samplers.samplers.registry.Param`.

    ``default`` overrides the parameter's own default (the node starts at the dropdown
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
    opts = {
        "default": float(value),
        "min": float(param.minimum) if param.minimum is not None else FLOAT_MIN,
        "max": float(param.maximum) if param.maximum is not None else FLOAT_MAX,
        "step": float(param.step) if param.step else 0.01,
        # keep exact values such as r1 = 1/3 instead of rounding them to the step
        "round": False,
        "tooltip": tooltip,
    }
    return ("FLOAT", opts)


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
