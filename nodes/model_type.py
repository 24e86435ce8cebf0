"""The model type behind ComfyUI's sampler wrapper, passed to the solvers explicitly.

ComfyUI calls a SAMPLER's function (``KSAMPLER.sampler_function``, or the
``sample_<name>`` of a menu entry) with ``model`` = ``KSamplerX0Inpaint``, whose
``inner_model`` is the ``CFGGuider``. The guider's ``model_patcher`` answers
``get_model_object("model_sampling")`` (with the patches a node such as ModelSamplingSD3
applied); older ComfyUI versions only have the base model's attribute,
``guider.inner_model.model_sampling``. The solvers in ``samplers/`` know none of these
objects: every solver this package hands to ComfyUI goes through :func:`comfy_solver`.

No ``comfy`` import: the objects are read by attribute.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Optional

from ..samplers.model_types import ModelType, model_type_from_model_sampling, resolve_model_type

__all__ = ["comfy_model_sampling", "comfy_model_type", "comfy_solver"]


def comfy_model_sampling(model: Any) -> Optional[Any]:
    """The ``model_sampling`` object behind ComfyUI's sampler wrapper ``model``, or None."""
    guider = getattr(model, "inner_model", None)
    patcher = getattr(guider, "model_patcher", None)
    if patcher is not None and hasattr(patcher, "get_model_object"):
        try:
            return patcher.get_model_object("model_sampling")
        except Exception:  # noqa: BLE001 - older ComfyUI: fall back to the base model's attribute
            pass
    return getattr(getattr(guider, "inner_model", None), "model_sampling", None)


def comfy_model_type(model: Any) -> ModelType:
    """The :class:`ModelType` of the model behind ComfyUI's sampler wrapper ``model``
    (flow for a ``CONST`` model_sampling, its sigma range, table, ``noise_scale`` and
    first-sigma offset); a wrapper without one falls back to what any model can carry."""
    ms = comfy_model_sampling(model)
    if ms is not None and hasattr(ms, "sigma_min"):
        return model_type_from_model_sampling(ms)
    return resolve_model_type(model)


def comfy_solver(solver: Callable, settings: Optional[Mapping[str, Any]] = None) -> Callable:
    """``solver`` as ComfyUI calls a sampler function: the model type read from ComfyUI's
    wrapper and passed as ``model_type`` (unless the caller gives one); ``settings`` are
    defaults that keyword options (``KSAMPLER`` extra options) override."""
    base = dict(settings or {})
    params = inspect.signature(solver).parameters.values()
    takes_type = any(p.name == "model_type" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        kwargs = {**base, **options}
        if takes_type and kwargs.get("model_type") is None:
            kwargs["model_type"] = comfy_model_type(model)
        return solver(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **kwargs)

    sample.__wrapped__ = solver  # which solver a KSAMPLER or menu entry runs
    return sample
