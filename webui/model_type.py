"""The model type behind the webuis' denoiser wrappers, passed to the solvers explicitly.

The webui calls a sampler function with its CFG wrapper as ``model``; ``model.inner_model``
is the denoiser wrapper, whose class says how the model parameterises x:

* k-diffusion's ``CompVisDenoiser`` / ``CompVisVDenoiser`` (A1111, reForge) and the DDPM
  variants: VE space with the model's discrete sigma table (where the wrapped model carries
  a ComfyUI-style ``model_sampling`` object, as reForge's can, that object decides);
* A1111's / reForge's ``SD3Denoiser``: a discrete schedule over a flow model's sigmas (flow);
* Forge's and Forge Neo's ``ForgeScheduleLinker``: whatever its predictor is (flow for
  Flux / Flow classes and prediction type ``const``, else VE). Forge Classic uses
  k-diffusion's ``CompVisDenoiser`` / ``CompVisVDenoiser`` as A1111 does.

The solvers in ``samplers/`` know none of these objects; nothing here imports a webui.
"""

from __future__ import annotations

from typing import Any, Optional

from ..samplers.model_types import ModelType, class_names, model_sampling_type, resolve_model_type, \
    sigma_table_of, stated_model_type

__all__ = ["detect_model_type", "denoiser_model_type", "KNOWN_WRAPPERS", "FORGE_PREDICTION_TYPES"]

# Denoiser wrappers (``model.inner_model`` of the CFG wrapper) whose x-space is known.
KNOWN_WRAPPERS = ("CompVisDenoiser", "CompVisVDenoiser", "DiscreteEpsDDPMDenoiser", "DiscreteVDDPMDenoiser",
                  "SD3Denoiser", "ForgeScheduleLinker")
FORGE_PREDICTION_TYPES = ("epsilon", "eps", "v_prediction", "v", "edm", "const")


def _forge_predictor_type(inner: Any) -> Optional[ModelType]:
    """Forge: the denoiser wrapper is ``ForgeScheduleLinker(predictor)``."""
    pred = getattr(inner, "predictor", None)
    if pred is None:
        return None
    flow = any("Flux" in n or "Flow" in n for n in class_names(pred))
    # Forge's predictors name their parameterisation; "const" is flow (ComfyUI's CONST)
    flow = flow or str(getattr(pred, "prediction_type", "")).lower() == "const"
    smin = getattr(pred, "sigma_min", None)
    smax = getattr(pred, "sigma_max", None)
    return ModelType(
        "flow" if flow else "ve",
        sigma_min=float(smin) if smin is not None else None,
        sigma_max=float(smax) if smax is not None else None,
        sigma_table=sigma_table_of(pred),
    )


def _is_flow_denoiser(inner: Any) -> bool:
    """A1111's (and reForge's) SD3 denoiser: a k-diffusion DiscreteSchedule named
    ``SD3Denoiser`` over the flow model's sigmas, whose model noises a latent as
    (1 - sigma) x0 + sigma eps (it has ``add_noise_to_latent``). Recognised by class name
    or by that method together with a sigma table inside [0, 1]."""
    if "SD3Denoiser" in class_names(inner):
        return True
    base = getattr(inner, "inner_model", None)
    table = sigma_table_of(inner)
    return (base is not None and callable(getattr(base, "add_noise_to_latent", None))
            and table is not None and float(table[-1]) <= 1.0)


def denoiser_model_type(model: Any) -> ModelType:
    """The model type behind the CFG wrapper ``model`` (anything with the denoiser wrapper
    as ``inner_model``), without refusing unknown wrappers (VE when nothing says otherwise).

    Order: what ``model`` states itself; a ``model_sampling`` object on the wrapped model;
    Forge's predictor; the SD3 denoiser (flow, its sigma table); the wrapper's discrete sigma
    table (VE); VE."""
    stated = stated_model_type(model)
    if stated is not None:
        return stated
    inner = getattr(model, "inner_model", None)
    found = model_sampling_type(getattr(inner, "inner_model", None)) or _forge_predictor_type(inner)
    if found is not None:
        return found
    table = sigma_table_of(inner)
    if table is not None and _is_flow_denoiser(inner):
        return ModelType("flow", float(table[0]), float(table[-1]), table)
    return resolve_model_type(model)


def detect_model_type(model: Any) -> ModelType:
    """The model type behind the webui's CFG wrapper ``model``; ValueError for a
    wrapper or predictor whose parameterisation is unknown."""
    inner = getattr(model, "inner_model", None)
    if not class_names(inner) & set(KNOWN_WRAPPERS):
        raise ValueError(
            f"SEEDS Samplers cannot serve this model: its denoiser wrapper {type(inner).__name__!r} is not one "
            f"whose parameterisation (eps/v or flow) is known ({', '.join(KNOWN_WRAPPERS)}); use another sampler")
    pred = getattr(inner, "predictor", None)
    if pred is not None:
        kind = getattr(pred, "prediction_type", None)
        if kind is not None and str(kind).lower() not in FORGE_PREDICTION_TYPES:
            raise ValueError(
                f"SEEDS Samplers cannot serve this model: its predictor {type(pred).__name__} has prediction type "
                f"{kind!r} (known: {', '.join(FORGE_PREDICTION_TYPES)}); use another sampler")
    return denoiser_model_type(model)
