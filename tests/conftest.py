"""Shared fixtures (kept small and generic): the solver tests' test models, and the
ComfyUI checkout of the real-ComfyUI tests.

Test modules cannot import each other (``--import-mode=importlib``, no ``__init__``), so
what several modules need lives here as fixtures, or in tests/support/ as helpers.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture
from seeds_samplers.samplers.schedules import edm_sigmas
from support import comfy_checkout


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread (tiny tensors: thread hand-offs dominate on a
    shared 2-core machine), restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mixture(shape=(3, 8, 8), stds=(0.15, 0.3, 0.5, 0.25), weights=(0.4, 0.3, 0.2, 0.1),
             sep: float = 1.0, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = sep * torch.randn((len(stds),) + tuple(shape), generator=g, dtype=torch.float64)
    return GaussianMixture(means, list(stds), list(weights))


@pytest.fixture(scope="session")
def make_mixture():
    """Factory for small isotropic Gaussian mixtures with random (seeded) means:
    ``make_mixture(shape=(3, 8, 8), stds=..., weights=..., sep=1.0, seed=0)``."""
    return _mixture


@pytest.fixture(scope="session")
def mixture4():
    """Four components in 3x8x8 with unequal weights and stds (0.15 .. 0.5)."""
    return _mixture()


@pytest.fixture
def analytic(mixture4):
    """``analytic(kind="edm", **kw)``: the exact denoiser of :func:`mixture4`."""
    return lambda kind="edm", **kw: AnalyticDenoiser(mixture4, kind=kind, **kw)


@pytest.fixture
def edm_case(analytic):
    """``edm_case(seed) -> (model, x, sigmas)``: the exact EDM denoiser of :func:`mixture4`,
    two samples of its prior at sigma 10 (drawn with ``seed``) and 6 EDM sigmas 10 .. 0.01."""
    def case(seed: int):
        model = analytic("edm")
        return model, model.prior_sample(2, 10.0, torch.Generator().manual_seed(seed)), edm_sigmas(6, 0.01, 10.0)

    return case


@pytest.fixture(scope="module")
def mix():
    """3 overlapping components in 1x2x2: smooth enough for asymptotic convergence tests."""
    return _mixture(shape=(1, 2, 2), stds=(0.5, 0.8, 0.6), weights=(0.5, 0.3, 0.2), sep=0.6, seed=0)


@pytest.fixture(scope="session")
def comfyui_root() -> str:
    """The ComfyUI checkout named by ``COMFYUI_ROOT`` (absolute); skips the test without one."""
    root = comfy_checkout.comfyui_root()
    if root is None:
        pytest.skip(comfy_checkout.SKIP_REASON)
    return root


@pytest.fixture(scope="session")
def comfyui_python(comfyui_root) -> str:
    """The checkout, for tests that run ComfyUI with this Python; skips when this Python
    lacks ComfyUI's requirements."""
    reason = comfy_checkout.missing_requirements()
    if reason:
        pytest.skip(reason)
    return comfyui_root


@pytest.fixture(scope="module")
def comfyui_imports(comfyui_python) -> Iterator[str]:
    """The checkout, importable (``import comfy``) in this process for one test module's
    tests; its ``sys.path`` entry and the modules loaded from it go at the module's end."""
    with comfy_checkout.importable(comfyui_python):
        yield comfyui_python
