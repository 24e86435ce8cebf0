"""The benchmark's test models: exact Gaussian mixtures (distance: W2 to the exact
mixture, :mod:`.metrics`) and the trained digits networks (distance: Frechet distance on
classifier features, :mod:`seeds_samplers.digits.fd`).

=============  =====================================================================
``photo8``      the 8-photo mixture (3x32x32, stds 0.1-0.3), SD's discrete VP schedule
``photo8-flow`` the same mixture seen as a flow model (shift 3)
``many``        100 digits as means (10 per class, 1x32x32), stds 0.03-0.08: many
                components, small spread -- a sharply non-linear denoiser at low sigma
``many-flow``   the same seen as a flow model (shift 3)
``digits-eps``  the trained eps-prediction U-Net (SD's discrete schedule)
``digits-flow`` the trained rectified-flow U-Net (shift 3)
``patches-eps`` the trained eps U-Net on 16x16 RGB patches of scikit-image's photographs
``patches-flow`` the trained rectified-flow U-Net (shift 3) on the same patches
``digits-cfg1`` the class-conditional eps U-Net (digits-cond, SD's discrete schedule) as the
``digits-cfg3`` hosts guide it (classifier-free guidance at scale 1, 3, 6; the requested
``digits-cfg6`` digits 0..9 in turn); distance: KID to the held-out digits of each
                requested class, averaged over the classes
=============  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from ..samplers.model_types import ModelType, resolve_model_type
from .gmm import AnalyticDenoiser, GaussianMixture, photo_mixture
from .metrics import mixture_stats

__all__ = ["TestModel", "MODELS", "GUIDED", "DEFAULT_MODELS", "build_model", "many_mixture", "DEFAULT_SCHEDULE"]

# The schedule each model is benchmarked on by default: what its users pick most.
DEFAULT_SCHEDULE = {"photo8": "karras", "photo8-flow": "simple", "many": "karras", "many-flow": "simple",
                    "digits-eps": "karras", "digits-flow": "simple", "patches-eps": "karras",
                    "patches-flow": "simple", "digits-cfg1": "karras", "digits-cfg3": "karras",
                    "digits-cfg6": "karras"}

MODELS: Tuple[str, ...] = tuple(DEFAULT_SCHEDULE)
# the guided models and their CFG scales: SD's usual range (the issue asks for 1, 3 and 6)
GUIDED: Dict[str, float] = {"digits-cfg1": 1.0, "digits-cfg3": 3.0, "digits-cfg6": 6.0}
# the shipped network (digits/denoiser.py's kind) behind each trained test model
TRAINED_KINDS: Dict[str, str] = {"digits-eps": "eps", "digits-flow": "flow", "patches-eps": "patches",
                                 "patches-flow": "patches-flow", **{name: "cond" for name in GUIDED}}
# a bench run without --models: the guided models cost twice a call each, so they are asked for by name
DEFAULT_MODELS: Tuple[str, ...] = tuple(m for m in MODELS if m not in GUIDED)


@dataclass
class TestModel:
    """One benchmark model.

    Attributes:
        name, title: id and display name.
        denoiser: ``model(x, sigma) -> x0`` (counts its calls in ``calls``).
        model_type: how the samplers see it (resolved by the package's adapter).
        metric: ``"W2"`` or ``"FD"`` (lower is better).
        default_schedule: host schedule name used unless another is asked for.
        payload: what :mod:`.comfy_runner` needs to rebuild the model in another process.
    """

    name: str
    title: str
    denoiser: Any
    model_type: ModelType
    metric: str
    default_schedule: str
    _prior: Callable[[int, torch.Generator], torch.Tensor]
    _score: Callable[[torch.Tensor], float]
    _floor: Callable[[int, int], float]
    payload: Dict[str, Any] = field(default_factory=dict)
    reference_steps: int = 400
    _ready: Callable[[], bool] = lambda: True
    _extras: Optional[Callable[[torch.Tensor], Dict[str, float]]] = None

    def ready(self) -> bool:
        """Whether :meth:`score` can run now (the digits classifier weights exist)."""
        return self._ready()

    def prior(self, n: int, seed: int) -> torch.Tensor:
        """``n`` initial latents at the model's sigma_max, from ``seed``."""
        return self._prior(n, torch.Generator().manual_seed(seed))

    def score(self, samples: torch.Tensor) -> float:
        """Distance of the samples to the model's true distribution (lower is better)."""
        return self._score(samples)

    def extras(self, samples: torch.Tensor) -> Dict[str, float]:
        """Further measurements printed beside the distance (the guided models: accuracy on
        the requested digit); none for the other models."""
        return {} if self._extras is None else self._extras(samples)

    def floor(self, n: int, seed: int) -> float:
        """The same distance for ``n`` exact (mixture) or real (digits) samples."""
        return self._floor(n, seed)

    @property
    def calls(self) -> int:
        return self.denoiser.calls


def many_mixture(components: int = 100, seed: int = 7) -> GaussianMixture:
    """``components`` training digits as means (an equal number per class), stds evenly
    spread over 0.03-0.08, unequal weights (1 .. 2, seeded)."""
    from ..digits.data import load_digits

    x, y = load_digits("train")
    per = components // 10
    idx = torch.cat([torch.nonzero(y == c).flatten()[:per] for c in range(10)])
    means = x[idx].to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    stds = torch.linspace(0.03, 0.08, len(idx), dtype=torch.float64)[torch.randperm(len(idx), generator=g)]
    weights = 1.0 + torch.rand(len(idx), generator=g, dtype=torch.float64)
    return GaussianMixture(means, stds.tolist(), weights.tolist())


def _gmm_model(name: str, title: str, mix: GaussianMixture, kind: str) -> TestModel:
    shift = 3.0 if kind == "flow" else 1.0
    den = AnalyticDenoiser(mix, kind=kind, shift=shift)

    def floor(n: int, seed: int) -> float:
        exact, _ = mix.sample(n, torch.Generator().manual_seed(10_000 + seed))
        return mixture_stats(exact, mix).w2

    payload = dict(meta=dict(model="gmm", gmm_kind=kind, kind="flow" if kind == "flow" else "ve", shift=shift),
                   arrays=dict(means=mix.means.numpy(), stds=mix.stds.numpy(), weights=mix.weights.numpy()))
    return TestModel(name, title, den, resolve_model_type(den), "W2", DEFAULT_SCHEDULE[name],
                     lambda n, g: den.prior_sample(n, den.sigma_max, g), lambda s: mixture_stats(s, mix).w2,
                     floor, payload, reference_steps=400)


_FD_CACHE: Dict[str, Any] = {}


def _digits_fd(dataset: str = "digits"):
    if dataset not in _FD_CACHE:
        from ..digits.fd import DigitsFD

        _FD_CACHE[dataset] = DigitsFD(dataset=dataset)
    return _FD_CACHE[dataset]


def _classifier_ready(dataset: str = "digits") -> bool:
    from ..digits.fd import CLASSIFIERS
    from ..digits.weights import weights_path

    return dataset in _FD_CACHE or weights_path(CLASSIFIERS[dataset]).with_suffix(".json").is_file()


_TITLES = {"eps": "digits-eps (trained U-Net, SD discrete eps)", "flow": "digits-flow (trained U-Net, flow shift 3)",
           "patches": "patches-eps (trained U-Net on 16x16 RGB photo patches, SD discrete eps)",
           "patches-flow": "patches-flow (trained U-Net on 16x16 RGB photo patches, flow shift 3)"}


def _digits_model(name: str, kind: str, weights: Optional[str] = None) -> TestModel:
    from ..digits.denoiser import MODELS as PARAMETERISATION, load_digits_model, model_dataset

    den = load_digits_model(kind, weights)
    # channels-last convolutions: the same network, about 1.6x faster on CPU
    den.net.to(memory_format=torch.channels_last)
    dataset = model_dataset(kind)
    flow = PARAMETERISATION[kind] == "flow"
    payload = dict(meta=dict(model="digits", digits_kind=kind, kind="flow" if flow else "ve",
                             shift=3.0 if flow else 1.0, weights=weights), arrays={})
    # the classifier loads at the first score (it may still be training when sampling starts)
    return TestModel(name, _TITLES[kind], den, resolve_model_type(den), "FD", DEFAULT_SCHEDULE[name],
                     lambda n, g: den.prior_sample(n, g), lambda s: _digits_fd(dataset)(s),
                     lambda n, seed: _digits_fd(dataset).floor(n, seed), payload, reference_steps=48,
                     _ready=lambda: _classifier_ready(dataset))


def _guided_model(name: str, cfg_scale: float) -> TestModel:
    """digits-cond under classifier-free guidance, the requested digits 0..9 in turn over every
    batch (the bench's chunks are multiples of 10, so a seed's samples request each digit
    equally), scored by the per-class KID x 10^3 of the guidance page (``bench/guidance.py``)."""
    from ..digits.guidance import balanced_labels
    from .comfy_runner import build_denoiser
    from .guidance import ClassMetrics

    payload = dict(meta=dict(model="digits", digits_kind="cond", kind="ve", shift=1.0, weights=None,
                             cfg_scale=cfg_scale), arrays={})
    den = build_denoiser(payload["meta"], payload["arrays"])  # what the ComfyUI runner rebuilds, too
    class_metrics = lru_cache(maxsize=1)(ClassMetrics)  # loads at the first score
    last: Dict[str, Any] = {}

    def measured(samples: torch.Tensor) -> Tuple[float, float]:
        """(accuracy, KID x 10^3), once per sample tensor: the score and the accuracy share it."""
        if last.get("samples") is not samples:
            last.update(samples=samples, result=class_metrics()(samples, balanced_labels(samples.shape[0])))
        return last["result"]

    title = f"{name} (class-conditional U-Net, SD discrete eps, CFG {cfg_scale:g}; KID per requested digit)"
    # the accuracy beside the KID: a sampler could lower the KID by guiding less
    return TestModel(name, title, den, resolve_model_type(den), "KID×10³", DEFAULT_SCHEDULE[name],
                     lambda n, g: den.prior_sample(n, g), lambda s: measured(s)[1],
                     lambda n, seed: class_metrics().floor(n, seed)[1], payload, reference_steps=48,
                     _ready=lambda: _classifier_ready("digits"), _extras=lambda s: {"accuracy": measured(s)[0]})


def build_model(name: str) -> TestModel:
    """The test model ``name`` (one of :data:`MODELS`)."""
    if name == "photo8":
        return _gmm_model(name, "8-photo mixture, SD-like VP (discrete)", photo_mixture(), "vp_discrete")
    if name == "photo8-flow":
        return _gmm_model(name, "8-photo mixture, flow (shift 3)", photo_mixture(), "flow")
    if name == "many":
        return _gmm_model(name, "100-component digit mixture (stds 0.03-0.08), SD-like VP", many_mixture(), "vp_discrete")
    if name == "many-flow":
        return _gmm_model(name, "100-component digit mixture (stds 0.03-0.08), flow (shift 3)", many_mixture(), "flow")
    if name in GUIDED:
        return _guided_model(name, GUIDED[name])
    if name in TRAINED_KINDS:
        return _digits_model(name, TRAINED_KINDS[name])
    raise ValueError(f"unknown test model {name!r}; known: {list(MODELS)}")
