"""A small image classifier whose penultimate features define the Frechet and kernel
distances: the digit classifier (32x32 grey, 10 digits) and the patch classifier (16x16 RGB,
which of the six photographs a patch comes from).

Three conv stages (each halving the side: 32 -> 16 -> 8 -> 4 for the digits), a 128-d
penultimate layer and a linear head. The constructor's defaults are the digit classifier,
whose weight file carries no config.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Classifier", "FEATURE_DIM"]

FEATURE_DIM = 128


class Classifier(nn.Module):
    """Args: ``in_channels``, ``image_size`` (a multiple of 8) and ``num_classes`` of the
    images it classifies (defaults: the digits)."""

    def __init__(self, in_channels: int = 1, image_size: int = 32, num_classes: int = 10):
        super().__init__()
        self.config = {"in_channels": in_channels, "image_size": image_size, "num_classes": num_classes}
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc = nn.Linear(128 * (image_size // 8) ** 2, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, 128] of images in [-1, 1]."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
