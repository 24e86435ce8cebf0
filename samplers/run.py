"""What every sampler does around its update formula.

:class:`SamplerRun` validates the inputs before any model call, resolves the model type,
computes the schedule in float64 on the host once (sigma, half-log-SNR lambda, alpha,
VE-equivalent sigma), moves sigmas to ``x.device``, and provides the model call, the
progress bar, the per-step callback and the noise sampler. The step loop then only does
tensor arithmetic with Python-float coefficients: no host-device synchronisation.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, List, Optional, Sequence

import torch
from tqdm.auto import trange

from .model_types import ModelType, resolve_model_type
from .noise import NOISE_TYPES, NoiseSampler, make_noise_sampler

__all__ = ["SamplerRun", "check_sigmas", "check_latent"]


def check_sigmas(sigmas: Any) -> List[float]:
    """Validate a schedule and return it as a float64 list (raises ``ValueError``)."""
    if not isinstance(sigmas, torch.Tensor):
        try:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        except Exception as e:  # noqa: BLE001 - reported as a ValueError with the cause
            raise ValueError(f"sigmas must be a 1-D tensor of noise levels ({e})") from None
    if sigmas.ndim != 1:
        raise ValueError(f"sigmas must be 1-D, got shape {tuple(sigmas.shape)}")
    if sigmas.numel() < 2:
        raise ValueError(f"sigmas must have at least 2 values, got {sigmas.numel()}")
    if not sigmas.is_floating_point():
        raise ValueError(f"sigmas must be floating point, got {sigmas.dtype}")
    values = sigmas.detach().to("cpu", torch.float64).tolist()
    for i, s in enumerate(values):
        if not math.isfinite(s):
            raise ValueError(f"sigmas contain NaN or inf (sigmas[{i}] = {s})")
        if s < 0:
            raise ValueError(f"sigmas must be non-negative (sigmas[{i}] = {s})")
    for i in range(len(values) - 1):
        if not values[i + 1] < values[i]:
            raise ValueError(
                f"sigmas must be strictly decreasing (sigmas[{i}] = {values[i]}, "
                f"sigmas[{i + 1}] = {values[i + 1]})"
            )
    return values


def check_latent(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have a batch dimension, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf")


class SamplerRun:
    """Shared set-up and bookkeeping of one sampling call.

    Attributes (all float64 Python lists indexed like ``sigmas``):
        sigma: the schedule (a flow model's first sigma of 1 offset as ComfyUI does).
        lam: half-log-SNR lambda = log(alpha / sigma) (+inf at sigma = 0).
        alpha: signal scale (1 for VE, 1 - sigma for flow).
        ve: VE-equivalent sigma / alpha.
    """

    def __init__(
        self,
        model: Callable,
        x: torch.Tensor,
        sigmas: Any,
        extra_args: Optional[dict] = None,
        callback: Optional[Callable] = None,
        disable: Optional[bool] = None,
        *,
        model_type: Any = None,
        stop_at_sigma_min: bool = False,
    ):
        values = check_sigmas(sigmas)
        check_latent(x)
        self.model = model
        self.extra_args = {} if extra_args is None else extra_args
        self.callback = callback
        self.disable = disable
        self.mt: ModelType = resolve_model_type(model, model_type)
        if self.mt.is_flow and values[0] > 1.0:
            raise ValueError(f"flow-model sigmas must lie in [0, 1] (sigmas[0] = {values[0]})")
        self.sigma = self.mt.prepare_sigmas(values)
        self.lam = [self.mt.half_log_snr(s) for s in self.sigma]
        self.alpha = [self.mt.alpha(s) for s in self.sigma]
        self.ve = [self.mt.ve_sigma(s) for s in self.sigma]

        self.out_dtype = x.dtype
        # Half-precision latents are stepped in float32; float32/64 keep their dtype.
        self.dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        self.device = x.device
        self.sigma_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
        self.s_in = x.new_ones([x.shape[0]], dtype=self.sigma_dtype)
        self.sigma_dev = self.to_device(self.sigma)
        self.ends_at_zero = self.sigma[-1] == 0.0
        self.n_steps = len(self.sigma) - 1 - (1 if (stop_at_sigma_min and self.ends_at_zero) else 0)
        if self.n_steps < 1:
            raise ValueError("stop_at_sigma_min needs at least one step before sigma = 0")
        self.x = x.to(self.dtype)

    # --- host-side helpers -----------------------------------------------------------
    def to_device(self, values: Sequence[float]) -> torch.Tensor:
        """Float64 host values as a tensor on ``x.device`` in the model's sigma dtype."""
        return torch.tensor(list(values), dtype=torch.float64).to(self.device, self.sigma_dtype)

    def is_denoise_step(self, i: int) -> bool:
        """True for a final step to sigma = 0, which returns the denoised estimate."""
        return self.sigma[i + 1] == 0.0

    def stage_sigma(self, i: int, c: float) -> float:
        """Noise level at fraction c of step i in lambda (geometric in the VE sigma)."""
        return self.mt.sigma_at(self.lam[i] + c * (self.lam[i + 1] - self.lam[i]))

    @staticmethod
    def host_pair(a: float, b: float) -> tuple:
        """The (sigma, sigma_next) arguments of a noise sampler, as CPU float64 scalars."""
        return torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)

    def noise_sampler(self, noise_sampler: Optional[NoiseSampler], noise_type: str) -> NoiseSampler:
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
        return make_noise_sampler(self.x, self.extra_args, noise_sampler, noise_type)

    def noise_factor(self, s_noise: float) -> float:
        return float(s_noise) * self.mt.noise_scale

    # --- the step loop ---------------------------------------------------------------
    def steps(self) -> Iterable[int]:
        return trange(self.n_steps, disable=self.disable)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma) with sigma a 0-dim device tensor, in the working dtype."""
        out = self.model(x, sigma * self.s_in, **self.extra_args)
        return out if out.dtype == self.dtype else out.to(self.dtype)

    def report(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        if self.callback is not None:
            s = self.sigma_dev[i]
            self.callback({"x": x, "i": i, "sigma": s, "sigma_hat": s, "denoised": denoised})

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.out_dtype)
