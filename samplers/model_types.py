"""The model-type adapter: how a host's latent ``x`` relates to the clean image and noise.

Two families cover every host we support:

* ``"ve"``   -- x = x0 + sigma * eps. ComfyUI's EPS, V_PREDICTION and EDM models,
  A1111's CompVis(V)Denoiser and Forge's non-flow predictors all present this space
  to samplers (the VP scaling happens inside the model wrapper).
* ``"flow"`` -- x = (1 - sigma) * x0 + sigma * eps with sigma in [0, 1] (ComfyUI's
  CONST: SD3, Flux, Wan, ...; Forge's PredictionFlux).

Every solver works in half-log-SNR ``lambda = log(alpha / sigma)`` with
``alpha = 1`` (VE) or ``alpha = 1 - sigma`` (flow). Dividing by alpha gives the
"VE-equivalent" pair (x / alpha, sigma / alpha) in which every VE formula of the
papers applies unchanged.

This module never imports a host and knows no host's wrapper objects: it reads what
any model can carry (:func:`resolve_model_type`). The host glue (``nodes/``, ``webui/``)
finds the model type behind its host's wrappers and passes it to the solvers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Sequence

import torch

__all__ = ["ModelType", "resolve_model_type", "stated_model_type", "model_sampling_type",
           "model_type_from_model_sampling", "sigma_table_of", "class_names", "VE", "FLOW"]

# ComfyUI replaces a flow model's first sigma of 1 (lambda = -inf) by
# percent_to_sigma(1e-4); without a model_sampling object we use the same offset in sigma.
FLOW_FIRST_SIGMA_OFFSET = 1e-4


@dataclass(frozen=True)
class ModelType:
    """What a sampler needs to know about the model it samples.

    Attributes:
        kind: ``"ve"`` or ``"flow"`` (see module docstring).
        sigma_min: smallest sigma the model was trained on, if known.
        sigma_max: largest sigma the model was trained on, if known.
        sigma_table: the model's own ascending discrete sigmas (SD-style models), if any.
            Solvers that need the model's VP time (tAB-DEIS) read it from here.
        noise_scale: factor on injected noise (ComfyUI ``model_sampling.noise_scale``).
        flow_first_sigma: what a first sigma >= 1 is replaced by on flow models.
    """

    kind: str = "ve"
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    sigma_table: Optional[torch.Tensor] = field(default=None, compare=False, repr=False)
    noise_scale: float = 1.0
    flow_first_sigma: float = 1.0 - FLOW_FIRST_SIGMA_OFFSET

    def __post_init__(self) -> None:
        if self.kind not in ("ve", "flow"):
            raise ValueError(f"model type must be 've' or 'flow', got {self.kind!r}")

    @property
    def is_flow(self) -> bool:
        return self.kind == "flow"

    # --- scalar maps (float64, host side) -------------------------------------------
    def alpha(self, sigma: float) -> float:
        """Signal scale alpha(sigma): 1 for VE, 1 - sigma for flow."""
        return 1.0 - sigma if self.is_flow else 1.0

    def ve_sigma(self, sigma: float) -> float:
        """VE-equivalent noise level sigma / alpha = exp(-lambda)."""
        if self.is_flow:
            return math.inf if sigma >= 1.0 else sigma / (1.0 - sigma)
        return sigma

    def half_log_snr(self, sigma: float) -> float:
        """lambda = log(alpha / sigma); +inf at sigma = 0."""
        if sigma <= 0.0:
            return math.inf
        if self.is_flow:
            return -math.inf if sigma >= 1.0 else math.log1p(-sigma) - math.log(sigma)
        return -math.log(sigma)

    def sigma_at(self, lam: float) -> float:
        """Inverse of :meth:`half_log_snr`."""
        if self.is_flow:
            return 1.0 / (1.0 + math.exp(lam)) if lam > -700 else 1.0
        return math.exp(-lam)

    def sigma_from_ve(self, ve_sigma: float) -> float:
        """Inverse of :meth:`ve_sigma`."""
        return ve_sigma / (1.0 + ve_sigma) if self.is_flow else ve_sigma

    def prepare_sigmas(self, sigmas: Sequence[float]) -> list:
        """Host-side float64 copy of the schedule, with a flow model's sigma=1 offset."""
        out = [float(s) for s in sigmas]
        if self.is_flow and out[0] >= 1.0:
            # keep the schedule strictly decreasing when its second sigma is above the offset
            nxt = out[1] if len(out) > 1 else 0.0
            out[0] = self.flow_first_sigma if nxt < self.flow_first_sigma else 0.5 * (1.0 + nxt)
        return out


VE = ModelType("ve")
FLOW = ModelType("flow")

_ALIASES = {
    "ve": "ve", "eps": "ve", "v": "ve", "v_prediction": "ve", "edm": "ve", "vp": "ve",
    "flow": "flow", "const": "flow", "rf": "flow", "rectified_flow": "flow",
}


def _from_name(name: str) -> ModelType:
    kind = _ALIASES.get(name.lower())
    if kind is None:
        raise ValueError(f"unknown model_type {name!r}; use one of {sorted(_ALIASES)}")
    return ModelType(kind)


def class_names(obj: Any) -> set:
    """Names of the classes of ``obj`` (its type and every base): hosts compose their model
    descriptions from mixins, whose names are the parameterisation (ComfyUI's ``CONST``)."""
    return {c.__name__ for c in type(obj).__mro__}


def sigma_table_of(obj: Any) -> Optional[torch.Tensor]:
    """``obj.sigmas`` as an ascending float64 CPU table, when it is one (k-diffusion's
    ``DiscreteSchedule`` wrappers, ComfyUI's model_sampling objects); else None."""
    t = getattr(obj, "sigmas", None)
    if isinstance(t, torch.Tensor) and t.ndim == 1 and t.numel() > 1:
        t = t.detach().to("cpu", torch.float64)
        return t if bool(t[0] <= t[-1]) else t.flip(0)
    return None


def model_type_from_model_sampling(model_sampling: Any) -> ModelType:
    """The :class:`ModelType` of a ``model_sampling`` object: ``sigma_min``, ``sigma_max``,
    optionally ``sigmas``, ``noise_scale`` and ``percent_to_sigma``, flow when one of its
    classes is named ``CONST`` (ComfyUI's objects and the digits models' imitations)."""
    ms = model_sampling
    flow = "CONST" in class_names(ms)
    kw = dict(
        kind="flow" if flow else "ve",
        sigma_min=float(ms.sigma_min),
        sigma_max=float(ms.sigma_max),
        sigma_table=sigma_table_of(ms),
        noise_scale=float(getattr(ms, "noise_scale", 1.0)),
    )
    if flow and hasattr(ms, "percent_to_sigma"):
        kw["flow_first_sigma"] = float(ms.percent_to_sigma(FLOW_FIRST_SIGMA_OFFSET))
    return ModelType(**kw)


def model_sampling_type(obj: Any) -> Optional[ModelType]:
    """The type of the ``model_sampling`` object ``obj`` carries (a host's model, the digits
    models), or None when it carries none."""
    ms = getattr(obj, "model_sampling", None)
    if ms is not None and hasattr(ms, "sigma_min"):
        return model_type_from_model_sampling(ms)
    return None


def stated_model_type(model: Any) -> Optional[ModelType]:
    """What ``model`` says about itself: a ``seeds_model_type`` attribute (the package's
    analytic test models), else the ``model_sampling`` object it carries; None if neither."""
    own = getattr(model, "seeds_model_type", None)
    if isinstance(own, ModelType):
        return own
    return model_sampling_type(model)


def resolve_model_type(model: Any, model_type: Any = None) -> ModelType:
    """Find out how ``model`` parameterises x, from what any model can carry.

    Order: an explicit ``model_type`` (a :class:`ModelType` or a name such as ``"ve"``,
    ``"eps"``, ``"flow"``, ``"const"``); what the model states itself
    (:func:`stated_model_type`); the discrete sigma table of a k-diffusion wrapper in
    ``model.inner_model`` (VE, e.g. ``CFGDenoiser(CompVisDenoiser(...))``); otherwise VE.

    Hosts wrap the model in objects this module does not know: the ComfyUI glue
    (``nodes/``) and the webui glue (``webui/``) read the model type from their host's
    objects and pass it as ``model_type``.
    """
    if model_type is not None:
        if isinstance(model_type, ModelType):
            return model_type
        if isinstance(model_type, str):
            return _from_name(model_type)
        raise ValueError(f"model_type must be a ModelType or a name, got {type(model_type).__name__}")
    stated = stated_model_type(model)
    if stated is not None:
        return stated
    inner = getattr(model, "inner_model", None)
    table = sigma_table_of(inner) if inner is not None else None
    if table is not None:
        return ModelType("ve", float(table[0]), float(table[-1]), table)
    return VE


def with_range(mt: ModelType, sigma_min: float, sigma_max: float) -> ModelType:
    """Copy of ``mt`` with a sigma range filled in where it was unknown."""
    return replace(
        mt,
        sigma_min=mt.sigma_min if mt.sigma_min is not None else sigma_min,
        sigma_max=mt.sigma_max if mt.sigma_max is not None else sigma_max,
    )
