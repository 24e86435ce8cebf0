"""Classifier-free guidance (CFG) on the class-conditional digits model, built as the hosts
build it, so the samplers run through the code path users hit with SD/SDXL/Flux.

Each sampler call evaluates the conditional network on one batch holding the conditional
and the unconditional ("no label") halves, and returns

    D = D_uncond + cfg_scale (D_cond - D_uncond)

(Ho & Salimans 2022, "Classifier-free diffusion guidance", eq. 6, written for the x0
prediction as ComfyUI and the webui combine it). The requested digits are per sample, set
on the wrapper (``labels``) or passed per call through the sampler's ``extra_args``
(``labels=...``, ``cfg_scale=...``), as A1111's CFG denoiser takes its conditioning. The
last call's unconditional and conditional predictions stay available (``last_uncond``,
``last_cond``) for guidance schemes that need them after the combination (CFG++), as
ComfyUI's post-CFG hook hands them over.

At ``cfg_scale == 1`` only the conditional half is evaluated and at ``cfg_scale == 0`` only
the unconditional one (ComfyUI skips the unconditional pass at 1 the same way), so those
two scales return exactly the conditional / unconditional prediction, at half the cost.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import nn

from .denoiser import DigitsDenoiser

__all__ = ["CFGDenoiser", "cfg_combine", "balanced_labels"]

Labels = Union[int, str, torch.Tensor]


def balanced_labels(n: int) -> torch.Tensor:
    """0, 1, ..., 9, 0, 1, ...: balanced requested digits for ``n`` samples."""
    return torch.arange(n) % 10


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """``uncond + cfg_scale (cond - uncond)``, the hosts' classifier-free guidance step.

    Exactly ``cond`` at scale 1 and ``uncond`` at scale 0 (the formula itself rounds there)."""
    if cfg_scale == 1.0:
        return cond
    if cfg_scale == 0.0:
        return uncond
    return uncond + cfg_scale * (cond - uncond)


class CFGDenoiser(nn.Module):
    """``model(x, sigma, **extra_args) -> x0`` with classifier-free guidance.

    Args:
        model: a class-conditional digits denoiser (``load_digits_model("cond")``).
        cfg_scale: guidance scale (1 = the conditional model, 0 = the unconditional one).
        labels: the requested digit per sample [B] (or one int for all, or ``"balanced"``:
            the digits 0..9 in turn over each call's batch, :func:`balanced_labels`); may be
            left ``None`` here and given per call instead.
        keep_uncond: evaluate the unconditional half at ``cfg_scale == 1`` too, so that
            ``last_uncond`` is always set (what CFG++ needs); off, as the hosts skip it.
    Attributes:
        model_sampling: the wrapped model's noise-level description (hosts and the
            model-type adapter read it).
        calls: sampler calls (one batched network evaluation each).
        last_cond, last_uncond: the conditional / unconditional x0 predictions of the last
            call (``None`` for a half that was not evaluated).
    """

    def __init__(self, model: DigitsDenoiser, cfg_scale: float = 1.0, labels: Optional[Labels] = None,
                 keep_uncond: bool = False):
        super().__init__()
        if not model.num_classes:
            raise ValueError("classifier-free guidance needs a class-conditional model (load_digits_model('cond'))")
        self.model = model
        self.cfg_scale = float(cfg_scale)
        self.labels = labels
        self.keep_uncond = keep_uncond
        self.model_sampling = model.model_sampling
        self.calls = 0
        self.last_cond: Optional[torch.Tensor] = None
        self.last_uncond: Optional[torch.Tensor] = None

    def prior_sample(self, n: int, generator: Optional[torch.Generator] = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.model.prior_sample(n, generator, dtype)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: Optional[Labels] = None,
                cfg_scale: Optional[float] = None, **kwargs: Any) -> torch.Tensor:
        """Guided x0 estimate.

        Args:
            x: noisy samples [B, 1, 32, 32].
            sigma: noise level, scalar or per sample [B].
            labels: requested digits for this call (default: the wrapper's ``labels``).
            cfg_scale: guidance scale for this call (default: the wrapper's).
            kwargs: other host ``extra_args`` (ignored).
        """
        self.calls += 1
        labels = self.labels if labels is None else labels
        if labels is None:
            raise ValueError("no labels: set CFGDenoiser.labels or pass labels= in extra_args")
        if isinstance(labels, str):
            if labels != "balanced":
                raise ValueError(f"labels must be digits or 'balanced', got {labels!r}")
            labels = balanced_labels(x.shape[0])
        scale = self.cfg_scale if cfg_scale is None else float(cfg_scale)
        b = x.shape[0]
        y = torch.as_tensor(labels, dtype=torch.long, device=x.device).reshape(-1).expand(b)
        null = torch.full((b,), self.model.num_classes, dtype=torch.long, device=x.device)
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
        need_cond = scale != 0.0
        need_uncond = scale != 1.0 or self.keep_uncond
        if need_cond and need_uncond:  # one batch [cond; uncond], as the hosts batch them
            d = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), labels=torch.cat([y, null]))
            cond, uncond = d[:b], d[b:]
        else:
            cond = self.model(x, sigma, labels=y) if need_cond else None
            uncond = self.model(x, sigma, labels=null) if need_uncond else None
        self.last_cond, self.last_uncond = cond, uncond
        if cond is None:
            return uncond
        if uncond is None:
            return cond
        return cfg_combine(cond, uncond, scale)
