"""Frechet distance (FD) and kernel distance (KID) between generated images and a
dataset's held-out images, on the penultimate (128-d) features of that dataset's
classifier (:mod:`.classifier`): the digit classifier for the digits, the patch classifier
(which photograph a patch comes from) for the RGB patches (:mod:`.data`).

FD is the Frechet (2-Wasserstein) distance between the Gaussians fitted to two feature
sets (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a
local Nash equilibrium", eq. 6; the same formula as FID with another feature network):

    FD = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^(1/2) S_2 S_1^(1/2))^(1/2))

computed in float64 from symmetric eigendecompositions (no complex matrix square root).
FD from a finite sample is biased upwards and the bias shrinks with the sample count,
so every FD table reports the *floor*: the FD of as many real training digits (never
seen as the reference) against the same held-out reference. KID (:func:`kernel_distance`)
is unbiased; its floor (the same real-vs-real comparison) measures the distance between
the training and held-out sets plus the metric's noise at that sample count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from .classifier import Classifier
from .weights import load_weights, weights_path

__all__ = ["FeatureStats", "load_classifier", "features", "feature_stats", "frechet_distance", "DigitsFD",
           "CLASSIFIER", "CLASSIFIERS", "kernel_distance", "class_kernel_distance"]

CLASSIFIER = "classifier"
CLASSIFIERS = {"digits": CLASSIFIER, "patches": "patches-classifier"}  # dataset -> its feature network


@dataclass(frozen=True)
class FeatureStats:
    """Mean [D] and covariance [D, D] (float64) of a feature set of ``n`` samples."""

    mean: torch.Tensor
    cov: torch.Tensor
    n: int


def load_classifier(path: Union[str, Path, None] = None, dataset: str = "digits") -> Classifier:
    """The shipped feature classifier of ``dataset`` (or the weights at ``path``), in eval
    mode on the CPU. Raises ``ValueError`` for a missing, corrupt or mismatched weight file."""
    path = weights_path(CLASSIFIERS[dataset]) if path is None else Path(path)
    state, config = load_weights(path, CLASSIFIER)
    net = Classifier(**config)  # the digit classifier's file has an empty config (the defaults)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{Path(path).name} does not match the digit classifier architecture: {e}") from None
    return net.eval().requires_grad_(False)


def features(net: Classifier, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Penultimate features [N, 128] (float64) of images [N, C, S, S] in [-1, 1] (the
    classifier's channels and side: [N, 1, 32, 32] for the digits).

    Generated images are clamped to [-1, 1] first (as they would be when saved)."""
    c, side = net.config["in_channels"], net.config["image_size"]
    if images.ndim != 4 or images.shape[1:] != (c, side, side):
        raise ValueError(f"expected images of shape [N, {c}, {side}, {side}], got {tuple(images.shape)}")
    out = []
    with torch.inference_mode():
        for k in range(0, images.shape[0], batch):
            xb = images[k:k + batch].to(torch.float32).clamp(-1, 1)
            out.append(net.features(xb).to(torch.float64))
    return torch.cat(out)


def feature_stats(feats: torch.Tensor) -> FeatureStats:
    """Gaussian fit (mean, unbiased covariance) of features [N, D], N >= 2."""
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features of shape [N >= 2, D], got {tuple(feats.shape)}")
    f = feats.to(torch.float64)
    mean = f.mean(0)
    c = f - mean
    return FeatureStats(mean, c.T @ c / (f.shape[0] - 1), f.shape[0])


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(0.5 * (m + m.T))
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FD between two Gaussian fits (see module docstring); >= 0, 0 for identical fits."""
    diff = a.mean - b.mean
    root_a = _sqrt_psd(a.cov)
    inner = root_a @ b.cov @ root_a
    w = torch.linalg.eigvalsh(0.5 * (inner + inner.T)).clamp_min(0)
    fd = float(diff @ diff + torch.trace(a.cov) + torch.trace(b.cov) - 2 * w.sqrt().sum())
    return max(fd, 0.0)


class DigitsFD:
    """FD and KID of image sets against a dataset's held-out images (the reference), with
    their floors.

    Args:
        classifier: the feature network (default: the dataset's shipped one).
        reference: reference images (default: the dataset's held-out split, e.g. the 1,000
            held-out digits).
        dataset: ``"digits"`` or ``"patches"`` (:mod:`.data`).
    """

    def __init__(self, classifier: Optional[Classifier] = None, reference: Optional[torch.Tensor] = None,
                 dataset: str = "digits"):
        from .data import load_dataset

        self.dataset = dataset
        self.net = classifier if classifier is not None else load_classifier(dataset=dataset)
        ref = reference if reference is not None else load_dataset(dataset, "heldout")[0]
        feats = features(self.net, ref)
        self.reference = feature_stats(feats)
        # KID's kernel (u.v / D + 1)^3 expects features of order one (Inception's are); these
        # ReLU features have an RMS of about 5, which makes the cubic kernel's values, and
        # the estimate's noise, about 10^4 times larger. One scale for every set: the reference's
        # RMS entry.
        self.kid_scale = float(feats.pow(2).mean().sqrt())
        self.reference_features = feats / self.kid_scale

    def __call__(self, images: torch.Tensor) -> float:
        """FD of ``images`` against the reference; inf for non-finite images."""
        if not bool(torch.isfinite(images).all()):
            return float("inf")
        return frechet_distance(feature_stats(features(self.net, images)), self.reference)

    def kid_features(self, images: torch.Tensor) -> torch.Tensor:
        """The features KID compares: the classifier's, divided by ``kid_scale``."""
        return features(self.net, images) / self.kid_scale

    def kid(self, images: torch.Tensor) -> float:
        """KID (:func:`kernel_distance`) of ``images`` against the reference, on
        :meth:`kid_features`; inf for non-finite images."""
        if not bool(torch.isfinite(images).all()):
            return float("inf")
        return kernel_distance(self.kid_features(images), self.reference_features)

    def real_sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` training images (a seeded random subset): the real samples of the floors."""
        from .data import load_dataset

        train = load_dataset(self.dataset, "train")[0]
        if not 2 <= n <= train.shape[0]:
            raise ValueError(f"the floor needs 2 <= n <= {train.shape[0]} training images, got {n}")
        idx = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        return train[idx]

    def floor(self, n: int, seed: int = 0) -> float:
        """FD of ``n`` training images (a seeded random subset) against the reference."""
        return self(self.real_sample(n, seed))

    def kid_floor(self, n: int, seed: int = 0) -> float:
        """KID of ``n`` training images (a seeded random subset) against the reference."""
        return self.kid(self.real_sample(n, seed))


def kernel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased squared MMD between feature sets a [m, D] and b [n, D] (m, n >= 2) with the
    cubic polynomial kernel k(u, v) = (u.v / D + 1)^3: the kernel distance (KID) of
    Binkowski et al. 2018, "Demystifying MMD GANs", eq. 1 / section 4. Unlike FD it has no
    sample-size bias (its mean over draws of equal distributions is 0; single draws can be
    negative), so small per-class sets can be compared."""
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    a, b = a.to(torch.float64), b.to(torch.float64)
    d = a.shape[1]
    m, n = a.shape[0], b.shape[0]
    kaa = (a @ a.T / d + 1) ** 3
    kbb = (b @ b.T / d + 1) ** 3
    kab = (a @ b.T / d + 1) ** 3
    return float((kaa.sum() - kaa.diagonal().sum()) / (m * (m - 1)) + (kbb.sum() - kbb.diagonal().sum()) / (n * (n - 1))
                 - 2 * kab.mean())


def class_kernel_distance(feats: torch.Tensor, labels: torch.Tensor, ref_feats: torch.Tensor,
                          ref_labels: torch.Tensor) -> float:
    """Mean over the classes present in ``labels`` of :func:`kernel_distance` between the
    features of that class's samples and of the reference's members of the class: the
    distance of class-conditional samples to the real digits of the requested class."""
    classes = labels.unique()
    return sum(kernel_distance(feats[labels == c], ref_feats[ref_labels == c]) for c in classes) / len(classes)
