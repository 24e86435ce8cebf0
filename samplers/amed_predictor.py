"""The AMED predictor (Zhou et al., "Fast ODE-based Sampling for Diffusion Models in Around 5
Steps", CVPR 2024, arXiv 2312.00094, Sec. 3.3 and Fig. 3; restated in docs/amed.md).

Per sampling interval [sigma_i, sigma_{i+1}] a tiny network maps

* the U-Net bottleneck feature of the first evaluation D(x_i, sigma_i), averaged over
  channels (an H x W map, 8 x 8 for SD-like U-Nets, flattened), and
* the raw noise levels sigma_i and sigma_{i+1}

to r in (0, 1) (the intermediate time sigma_m = sigma_{i+1}^r sigma_i^(1-r)) and, optionally,
a direction scale c_dir in [1 - scale_dir, 1 + scale_dir] and a time scale a_time in
[1 - scale_time, 1 + scale_time] (both 1 when the head is absent).

Architecture (parameter names as in the official state dict, so official predictors
convert with :mod:`seeds_samplers.amed.convert`):

* time embedding: sinusoidal embedding with 8 channels of each sigma (frequencies
  10000^(-k/3), k = 0..3, sine half first), then ``map_layer0`` Linear(8, 8) + SiLU, shared by
  sigma_i and sigma_{i+1};
* feature path: ``enc_layer0`` Linear(H*W, 128) + SiLU + ``enc_layer1`` Linear(128, 4);
* heads on the concatenation [feature 4 | emb(sigma_i) 8 | emb(sigma_{i+1}) 8]: ``fc_r`` ->
  sigmoid = r; ``fc_scale_dir`` / ``fc_scale_time`` -> sigmoid * 2 s + (1 - s).

Initialisation: the feature path Kaiming-normal with zero biases and the time-embedding
layer Xavier-uniform, as the official code; the heads start at zero (official: Kaiming), so
an untrained predictor gives exactly r = 1/2, c_dir = a_time = 1, i.e. the base solver's
midpoint method, and distillation starts from that method.

Noise levels are *VE-equivalent* sigma / alpha (the k-diffusion sigma for SD-type models,
sigma / (1 - sigma) for flow models), so the same predictor code serves both.

Pure PyTorch; imports no host.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AMEDPredictor", "sigma_embedding", "EMB_CHANNELS", "HIDDEN", "FEATURE_OUT"]

EMB_CHANNELS = 8      # sinusoidal channels per sigma
HIDDEN = 128          # feature path hidden width
FEATURE_OUT = 4       # feature path output width
MAX_POSITIONS = 10000


def sigma_embedding(sigma: torch.Tensor, channels: int = EMB_CHANNELS) -> torch.Tensor:
    """Sinusoidal embedding [B, channels] of raw noise levels ``sigma`` [B].

    Frequencies (1 / 10000)^(k / (channels/2 - 1)), k = 0 .. channels/2 - 1 (endpoint
    included); the sine half comes first (the official layout swaps EDM's cos/sin halves).
    """
    half = channels // 2
    k = torch.arange(half, dtype=torch.float32, device=sigma.device)
    freqs = (1.0 / MAX_POSITIONS) ** (k / (half - 1))
    args = sigma.to(torch.float32).reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class AMEDPredictor(nn.Module):
    """r (and optional direction / time scales) for one AMED interval.

    Args:
        feature_size: number of bottleneck positions H*W (64 for an 8 x 8 feature).
        scale_dir: half-width of the direction-scale range (0 = no ``fc_scale_dir`` head).
        scale_time: half-width of the time-scale range (0 = no ``fc_scale_time`` head).
    """

    def __init__(self, feature_size: int = 64, scale_dir: float = 0.0, scale_time: float = 0.0):
        super().__init__()
        if int(feature_size) != feature_size or feature_size < 1:
            raise ValueError(f"feature_size must be a positive integer, got {feature_size!r}")
        for name, v in (("scale_dir", scale_dir), ("scale_time", scale_time)):
            if not 0.0 <= float(v) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        self.feature_size = int(feature_size)
        self.scale_dir = float(scale_dir)
        self.scale_time = float(scale_time)
        self.map_layer0 = nn.Linear(EMB_CHANNELS, EMB_CHANNELS)
        self.enc_layer0 = nn.Linear(self.feature_size, HIDDEN)
        self.enc_layer1 = nn.Linear(HIDDEN, FEATURE_OUT)
        width = FEATURE_OUT + 2 * EMB_CHANNELS
        self.fc_r = nn.Linear(width, 1)
        self.fc_scale_dir = nn.Linear(width, 1) if self.scale_dir > 0 else None
        self.fc_scale_time = nn.Linear(width, 1) if self.scale_time > 0 else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.map_layer0.weight)
        nn.init.zeros_(self.map_layer0.bias)
        for layer in (self.enc_layer0, self.enc_layer1):
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.fc_r, self.fc_scale_dir, self.fc_scale_time):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    @property
    def outputs(self) -> int:
        """1, 2 or 3: r, then the direction scale and/or the time scale."""
        return 1 + (self.fc_scale_dir is not None) + (self.fc_scale_time is not None)

    def forward(self, feature: Optional[torch.Tensor], sigma_cur: torch.Tensor,
                sigma_next: torch.Tensor, batch: Optional[int] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(r, c_dir, a_time)``, each [B] (float32).

        Args:
            feature: [B, H, W] or [B, H*W] channel-mean bottleneck feature, or None for the
                all-zero feature (AFS first step, time-only predictors).
            sigma_cur, sigma_next: VE-equivalent noise levels, scalars or [B].
            batch: B when ``feature`` is None.
        """
        device = self.fc_r.weight.device
        if feature is None:
            if batch is None:
                raise ValueError("batch is required when feature is None")
            f = torch.zeros(batch, self.feature_size, device=device)
        else:
            f = feature.reshape(feature.shape[0], -1).to(device, torch.float32)
            if f.shape[1] != self.feature_size:
                raise ValueError(
                    f"bottleneck feature has {f.shape[1]} positions, this predictor expects {self.feature_size} "
                    f"(trained on a different model or resolution)")
        b = f.shape[0]
        s0 = torch.as_tensor(sigma_cur, device=device).reshape(-1).expand(b)
        s1 = torch.as_tensor(sigma_next, device=device).reshape(-1).expand(b)
        e0 = F.silu(self.map_layer0(sigma_embedding(s0)))
        e1 = F.silu(self.map_layer0(sigma_embedding(s1)))
        h = self.enc_layer1(F.silu(self.enc_layer0(f)))
        z = torch.cat([h, e0, e1], dim=1)
        r = torch.sigmoid(self.fc_r(z)).reshape(b)
        one = torch.ones_like(r)
        c_dir = one if self.fc_scale_dir is None else \
            (torch.sigmoid(self.fc_scale_dir(z)) * 2 * self.scale_dir + (1 - self.scale_dir)).reshape(b)
        a_time = one if self.fc_scale_time is None else \
            (torch.sigmoid(self.fc_scale_time(z)) * 2 * self.scale_time + (1 - self.scale_time)).reshape(b)
        return r, c_dir, a_time

    @staticmethod
    def sigma_m(r: torch.Tensor, sigma_cur: float, sigma_next: float) -> torch.Tensor:
        """sigma_m = sigma_next^r sigma_cur^(1 - r): geometric, i.e. linear in log sigma
        (paper Eq. 9 in sigma notation). Both sigmas must be positive."""
        if not (sigma_cur > 0 and sigma_next > 0):
            raise ValueError(f"sigma_m needs positive noise levels, got {sigma_cur}, {sigma_next}")
        return torch.exp((1 - r) * math.log(sigma_cur) + r * math.log(sigma_next))
