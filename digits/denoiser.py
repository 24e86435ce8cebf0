"""The digits networks as the samplers see a host model: ``model(x, sigma) -> x0``.

Each wrapper carries a ``model_sampling`` object with the interface the model-type
adapter reads from hosts (``sigma_min``, ``sigma_max``, the ascending ``sigmas`` table and,
for rectified flow, a ``CONST`` class), so :func:`~seeds_samplers.samplers.model_types.
resolve_model_type` reads it with the function the ComfyUI glue reads a ComfyUI model's with
(:func:`~seeds_samplers.samplers.model_types.model_type_from_model_sampling`).

* ``digits-eps``: x = x0 + sigma eps (VE, as k-diffusion and ComfyUI present SD);
  the network sees x_t = x / sqrt(1 + sigma^2) at the continuous timestep found by
  interpolating log sigma in SD's table, predicts eps, and x0 = x - sigma eps.
* ``digits-flow``: x = (1 - sigma) x0 + sigma eps; the network sees x at timestep
  1000 sigma, predicts v = eps - x0, and x0 = x - sigma v.
* ``digits-cond``: the eps model's parameterisation with a class-conditional U-Net; the
  requested digits come in as ``labels`` (``model(x, sigma, labels=y)``, as samplers pass
  ``extra_args``); no labels = the unconditional ("no label") prediction. Classifier-free
  guidance on top of it: :mod:`.guidance`.
* ``patches-eps`` (name ``"patches"``): the eps parameterisation on 16x16 RGB patches of
  scikit-image's photographs (:func:`.data.load_patches`), the same U-Net code with three
  channels; ``patches-flow`` (name ``"patches-flow"``): the flow parameterisation on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .schedule import FLOW_SHIFT, eps_sigma_table, flow_sigma_table
from .unet import UNet, UNetConfig
from .weights import load_weights, weights_path

__all__ = ["DigitsDenoiser", "ModelSamplingDiscreteEps", "ModelSamplingDiscreteFlowCONST", "load_digits_model",
           "KINDS", "MODELS", "DATASETS", "model_file", "model_dataset"]

KINDS = ("eps", "flow")  # parameterisations
# shipped model name -> its parameterisation
MODELS = {"eps": "eps", "flow": "flow", "cond": "eps", "patches": "eps", "patches-flow": "flow"}
# shipped model name -> the dataset it was trained on (default: the digits)
DATASETS = {"patches": "patches", "patches-flow": "patches"}
_FILES = {"patches": "patches-eps", "patches-flow": "patches-flow"}


def model_file(name: str) -> str:
    """Weight-file stem of the shipped model ``name``: ``digits-<name>``, ``patches-eps``,
    ``patches-flow``."""
    return _FILES.get(name, f"digits-{name}")


def model_dataset(name: str) -> str:
    """The dataset the shipped model ``name`` was trained on (``"digits"`` or ``"patches"``)."""
    return DATASETS.get(name, "digits")


class _Sampling:
    """The host-style noise-level description of a digits model."""

    def __init__(self, table: torch.Tensor):
        self.sigmas = table  # ascending, float64
        self.sigma_min = float(table[0])
        self.sigma_max = float(table[-1])
        self.noise_scale = 1.0


class ModelSamplingDiscreteEps(_Sampling):
    """SD's discrete eps schedule (VE view)."""

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep of sigma, linear in log sigma between table entries."""
        log_table = self.sigmas.log().to(sigma.device, torch.float32)
        ls = sigma.float().clamp_min(self.sigma_min).log()
        idx = torch.searchsorted(log_table, ls).clamp(1, len(log_table) - 1)
        lo, hi = log_table[idx - 1], log_table[idx]
        w = ((ls - lo) / (hi - lo)).clamp(0, 1)
        return idx - 1 + w


class CONST:
    """Marker base class: the adapter recognises rectified-flow model_sampling objects
    by a base class of this name (as ComfyUI composes its flow models)."""


class ModelSamplingDiscreteFlowCONST(_Sampling, CONST):
    """Rectified flow with SD3's timestep shift (x = (1 - sigma) x0 + sigma eps)."""

    def __init__(self, shift: float = FLOW_SHIFT):
        super().__init__(flow_sigma_table(shift))
        self.shift = shift

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1000.0 * sigma.float()

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        t = 1.0 - percent
        return self.shift * t / (1 + (self.shift - 1) * t)


class DigitsDenoiser(nn.Module):
    """``model(x, sigma) -> x0`` for a trained digits U-Net.

    Args:
        net: the U-Net (class-conditional when ``net.config.num_classes > 0``).
        kind: ``"eps"`` or ``"flow"`` (the parameterisation).
    Attributes:
        model_sampling: the noise-level description (see module docstring).
        calls: number of forward calls (for NFE accounting in tests and benchmarks).
    """

    def __init__(self, net: UNet, kind: str):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.net = net.eval().requires_grad_(False)
        self.kind = kind
        self.model_sampling = ModelSamplingDiscreteEps(eps_sigma_table()) if kind == "eps" \
            else ModelSamplingDiscreteFlowCONST()
        self.calls = 0

    @property
    def sigma_min(self) -> float:
        return self.model_sampling.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.model_sampling.sigma_max

    @property
    def num_classes(self) -> int:
        """Number of classes of a conditional model; 0 for an unconditional one."""
        return self.net.config.num_classes

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        """x0 estimate of x at noise level sigma (scalar or per sample).

        Args:
            labels: digit per sample [B] (or one for all) for a conditional model, index
                ``num_classes`` = no label; ``None`` = no label for every sample.
            kwargs: other host ``extra_args`` (ignored).
        """
        self.calls += 1
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(x.shape[0])
        view = (-1,) + (1,) * (x.ndim - 1)
        s = sigma.to(torch.float32).view(view)
        xf = x.to(torch.float32)
        t = self.model_sampling.timestep(sigma)
        if labels is not None:
            labels = torch.as_tensor(labels, device=x.device).reshape(-1).expand(x.shape[0])
        if self.kind == "eps":
            eps = self.net(xf / (1 + s * s).sqrt(), t, labels)
            out = xf - s * eps
        else:
            out = xf - s * self.net(xf, t, labels)
        return out.to(x.dtype)

    def prior_sample(self, n: int, generator: Optional[torch.Generator] = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Initial latents as hosts draw them: sigma_max * eps (eps model), eps (flow)."""
        c = self.net.config
        eps = torch.randn((n, c.in_channels, c.image_size, c.image_size), generator=generator, dtype=torch.float64)
        scale = self.sigma_max if self.kind == "eps" else 1.0
        return (scale * eps).to(dtype)


def load_digits_model(kind: str = "eps", path: Union[str, Path, None] = None) -> DigitsDenoiser:
    """The shipped ``digits-<kind>`` denoiser (or the weights at ``path``), on the CPU in
    float32; ``kind`` is a name of :data:`MODELS` (``"cond"``: the class-conditional eps
    model; ``"patches"`` / ``"patches-flow"``: the RGB-patch eps / flow models). Raises ``ValueError`` for a missing, corrupt or mismatched weight file."""
    if kind not in MODELS:
        raise ValueError(f"kind must be one of {tuple(MODELS)}, got {kind!r}")
    path = weights_path(model_file(kind)) if path is None else Path(path)
    # the file records its parameterisation, or "cond" for the class-conditional model
    state, config = load_weights(path, "cond" if kind == "cond" else MODELS[kind])
    net = UNet(UNetConfig.from_dict(config))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{Path(path).name} does not match the digits U-Net architecture: {e}") from None
    return DigitsDenoiser(net, MODELS[kind])
