"""Test doubles and helpers shared by the solver tests."""

from __future__ import annotations

from typing import Callable, List

import numpy as np
import torch

from seeds_samplers.samplers.model_types import VE, ModelType

F64 = torch.float64


def record(fn, *args, **kw):
    """Run a sampler; return (x at every step then the output, denoised at every step)."""
    xs, ds = [], []

    def cb(d):
        xs.append(d["x"].clone())
        ds.append(d["denoised"].clone())

    out = fn(*args, callback=cb, disable=True, **kw)
    return xs + [out], ds


def no_noise(sigma, sigma_next):
    """Noise sampler for runs that must draw none (deterministic settings)."""
    raise AssertionError("a deterministic run drew noise")


class Counting:
    """Wraps a model, recording every sigma it is called with."""

    def __init__(self, model):
        self.model = model
        self.sigmas: List[float] = []
        self.seeds_model_type = getattr(model, "seeds_model_type", None)

    def __call__(self, x, sigma, **kw):
        self.sigmas.append(float(sigma.reshape(-1)[0]))
        return self.model(x, sigma, **kw)

    @property
    def calls(self) -> int:
        return len(self.sigmas)


class PolyEpsModel:
    """D(x, sigma) = x - sigma g(sigma), so eps = g(sigma) whatever x is: the ODE becomes a
    quadrature and each step's increment shows the weights the sampler used."""

    def __init__(self, g: Callable[[np.ndarray], np.ndarray], model_type: ModelType = VE):
        self.g = g
        self.seeds_model_type = model_type

    def __call__(self, x, sigma, **kw):
        s = sigma.to(F64).reshape(-1)
        view = (-1,) + (1,) * (x.ndim - 1)
        eps = torch.as_tensor(self.g(s.numpy()), dtype=F64).view(view)
        return (x.to(F64) - s.view(view) * eps).to(x.dtype)


def polynomial(coeffs) -> Callable[[np.ndarray], np.ndarray]:
    """g(s) = sum_k coeffs[k] s^k, in float64."""
    c = np.asarray(coeffs, dtype=np.float64)
    return lambda s: np.polynomial.polynomial.polyval(np.asarray(s, dtype=np.float64), c)
