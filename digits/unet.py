"""A small U-Net for square images: 32x32 single-channel digits, 16x16 RGB patches.

Three resolutions (full, 1/2, 1/4: 32, 16, 8 for the digits) with a ``middle_block`` at the
lowest (residual block, self-attention, residual block) as in SD's U-Net, so AMED's
bottleneck feature (the channel-mean of the middle block's output) exists. The image
channels (``in_channels``) and side (``image_size``, a multiple of 4) are config fields;
the side only tells the wrappers what shape to draw latents in, the network is
convolutional. The noise level enters as a
sinusoidal embedding of the model's own timestep (0..999 for the discrete eps model,
1000 * sigma for the flow model, as hosts feed SD and SD3).

A class-conditional U-Net (``num_classes > 0``) adds a learned label embedding to the time
embedding; its table has one row more than there are classes, the "no label" index
``num_classes`` that classifier-free guidance evaluates as the unconditional prediction.
Unconditional configs (``num_classes == 0``, the shipped eps/flow models) build exactly the
network they were trained as: no extra parameters, the same forward arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNetConfig", "UNet", "timestep_embedding"]


@dataclass(frozen=True)
class UNetConfig:
    channels: Tuple[int, int, int] = (32, 64, 64)
    groups: int = 8
    in_channels: int = 1
    num_classes: int = 0  # 0: unconditional
    image_size: int = 32

    def to_dict(self) -> dict:
        d = asdict(self)
        # fields at their defaults are left out, so the shipped digits files keep the
        # metadata they were written with
        if not self.num_classes:
            del d["num_classes"]
        if self.image_size == 32:
            del d["image_size"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        return cls(channels=tuple(int(c) for c in d["channels"]), groups=int(d["groups"]),
                   in_channels=int(d["in_channels"]), num_classes=int(d.get("num_classes", 0)),
                   image_size=int(d.get("image_size", 32)))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (continuous) timesteps t [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                             v.transpose(1, 2)[:, None])[:, 0]
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class MiddleBlock(nn.Module):
    """ResBlock - attention - ResBlock at the lowest resolution (SD's ``middle_block``)."""

    def __init__(self, ch: int, temb: int, groups: int):
        super().__init__()
        self.res1 = ResBlock(ch, ch, temb, groups)
        self.attn = Attention(ch, groups)
        self.res2 = ResBlock(ch, ch, temb, groups)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.res2(self.attn(self.res1(x, emb)), emb)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        c0, c1, c2 = config.channels
        g = config.groups
        temb = 4 * c0
        self.temb_dim = c0
        self.time_mlp = nn.Sequential(nn.Linear(c0, temb), nn.SiLU(), nn.Linear(temb, temb))
        # created only for conditional configs, so unconditional state dicts load strictly
        self.label_emb = nn.Embedding(config.num_classes + 1, temb) if config.num_classes else None
        self.conv_in = nn.Conv2d(config.in_channels, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, temb, g)                      # 32x32
        self.pool0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.down1 = ResBlock(c0, c1, temb, g)                      # 16x16
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = ResBlock(c1, c2, temb, g)                      # 8x8
        self.middle_block = MiddleBlock(c2, temb, g)                # 8x8 bottleneck
        self.up2 = ResBlock(c2 + c2, c1, temb, g)                   # 8x8
        self.upconv1 = nn.Conv2d(c1, c1, 3, padding=1)
        self.up1 = ResBlock(c1 + c1, c0, temb, g)                   # 16x16
        self.upconv0 = nn.Conv2d(c0, c0, 3, padding=1)
        self.up0 = ResBlock(c0 + c0, c0, temb, g)                   # 32x32
        self.norm_out = nn.GroupNorm(g, c0)
        self.conv_out = nn.Conv2d(c0, config.in_channels, 3, padding=1)

    @property
    def null_label(self) -> int:
        """The "no label" index of a conditional U-Net (``num_classes``)."""
        return self.config.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """eps or v prediction for x [B, C, S, S] (S = ``config.image_size``) at timesteps t [B].

        Args:
            labels: class indices [B] (``null_label`` = no label) for a conditional U-Net;
                ``None`` there means no label for every sample. An unconditional U-Net refuses
                labels rather than ignoring them.
        """
        emb = self.time_mlp(timestep_embedding(t, self.temb_dim))
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
            emb = emb + self.label_emb(labels.to(device=x.device, dtype=torch.long).reshape(-1).expand(x.shape[0]))
        elif labels is not None:
            raise ValueError("labels given to an unconditional digits U-Net (num_classes = 0)")
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1(self.pool0(h0), emb)
        h2 = self.down2(self.pool1(h1), emb)
        h = self.middle_block(h2, emb)
        h = self.up2(torch.cat([h, h2], 1), emb)
        h = self.upconv1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up1(torch.cat([h, h1], 1), emb)
        h = self.upconv0(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up0(torch.cat([h, h0], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
