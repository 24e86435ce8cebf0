"""Noise for stochastic solvers: seeded per-sample streams, a fast Brownian tree, and
the Markov-preserving builder that turns independent increments into stage noises.

A noise sampler follows the k-diffusion protocol ``noise_sampler(sigma, sigma_next)``
and returns a unit-variance Gaussian tensor shaped like the latent. Samplers here pass
the two sigmas as 0-dim float64 CPU tensors, so a host's noise sampler (k-diffusion's
``BrownianTreeNoiseSampler``) works, and ours never synchronises with the device.

Seeding: sample ``b`` of a batch draws from a stream keyed by ``seed + b`` (the
per-image seed convention of A1111), mixed with a salt so that the stream is never
the one ``torch.manual_seed(seed)`` gives -- the initial latent noise of ComfyUI and
A1111 is drawn from that stream (ComfyUI issue #9819).
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from typing import Callable, List, Optional, Sequence

import torch

__all__ = [
    "NoiseSampler",
    "NOISE_TYPES",
    "mix_seed",
    "batch_seeds",
    "GaussianNoise",
    "BrownianNoise",
    "make_noise_sampler",
    "StageNoise",
]

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NOISE_TYPES = ("gaussian", "brownian")

_MASK64 = (1 << 64) - 1
_SALT_GAUSSIAN = 0x5EED5A1
_SALT_BROWNIAN = 0xB20A1A4


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_seed(*parts: int) -> int:
    """Hash integers into a 63-bit seed (a torch.Generator accepts < 2**63)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def batch_seeds(batch: int, seed: Optional[int]) -> List[int]:
    """Per-sample seeds ``seed + b``; without a host seed, one is drawn from torch's global RNG."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return [int(seed) + b for b in range(batch)]


def _draw_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _per_sample_randn(generators: Sequence[torch.Generator], shape: tuple, device, dtype) -> torch.Tensor:
    """One N(0, I) row per generator, written in place (no stacking copy)."""
    out = torch.empty((len(generators),) + shape, device=device, dtype=dtype)
    for b, g in enumerate(generators):
        torch.randn(shape, generator=g, device=device, dtype=dtype, out=out[b])
    return out


class GaussianNoise:
    """Independent N(0, I) draws, one seeded generator per batch element.

    An image's noise therefore depends only on its own seed, not on the batch it is in.
    """

    def __init__(self, x: torch.Tensor, seeds: Sequence[int]):
        self.shape = tuple(x.shape[1:])
        self.device = x.device
        self.dtype = x.dtype
        self.generators = []
        for s in seeds:
            g = torch.Generator(device=x.device)
            g.manual_seed(mix_seed(s, _SALT_GAUSSIAN))
            self.generators.append(g)

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        return _per_sample_randn(self.generators, self.shape, self.device, _draw_dtype(self.dtype)).to(self.dtype)


class BrownianNoise:
    """Brownian-consistent noise: increments of one Brownian path W(u), u = log(sigma).

    The path is a virtual dyadic Brownian tree over a fixed range of u (independent of
    the schedule and the step count) with ``2**depth`` leaves (width 1.7e-6 in log sigma
    at the default depth 24), each node's Gaussian seeded by (seed, node). A query point
    is snapped to the nearest grid point, so the path is a pure function of the seed:
    the same seed gives the same path whatever the steps, and schedule points that
    differ only by rounding see the same value. The noise of an interval is
    ``(W(u1) - W(u0)) / sqrt(|u1 - u0|)`` over the snapped interval, an exact unit normal,
    and increments over disjoint intervals are independent. (An interval shorter than
    half a leaf gets an independent normal keyed by its ends.)

    Outside the tree's range (sigma below 1.1e-7 or above 1.6e5) the path continues as a
    free Brownian motion, drawn from its exact conditional law given the nearest values
    already known there; those values are remembered for the last few regions visited
    (queries are expected to move monotonically, as the samplers here do).

    Sigma = 0 reads the tree's lowest point (a step to it ends at sigma ~1.1e-7; from a
    sigma below that point the increment is read back up to it, still a unit normal).

    Consecutive queries share most of the tree path; an LRU cache of node values makes a
    step cost a handful of Gaussian draws per sample instead of a full descent.
    """

    U_MIN = -16.0  # sigma ~ 1.1e-7
    U_MAX = 12.0  # sigma ~ 1.6e5

    def __init__(self, x: torch.Tensor, seeds: Sequence[int], depth: int = 24, cache_size: int = 128):
        self.shape = tuple(x.shape[1:])
        self.device = x.device
        self.dtype = x.dtype
        self.draw = _draw_dtype(x.dtype)
        self.keys = [mix_seed(s, _SALT_BROWNIAN) for s in seeds]
        self.depth = depth
        self.n = 1 << depth
        self.leaf = (self.U_MAX - self.U_MIN) / self.n
        self.gen = torch.Generator(device=x.device)
        # a descent touches about 2 nodes per level: keep several descents
        self.cache: "OrderedDict[int, torch.Tensor]" = OrderedDict()
        self.cache_size = max(int(cache_size), 4 * depth + 8)
        # below (-1) / above (+1) the range: sorted [(u, W(u))] drawn so far
        self.outside: "dict[int, list]" = {-1: [], 1: []}

    def _gauss(self, key: int) -> torch.Tensor:
        out = torch.empty((len(self.keys),) + self.shape, device=self.device, dtype=self.draw)
        for b, k in enumerate(self.keys):
            self.gen.manual_seed(mix_seed(k, key))
            torch.randn(self.shape, generator=self.gen, device=self.device, dtype=self.draw, out=out[b])
        return out

    def _remember(self, key: int, value: torch.Tensor) -> torch.Tensor:
        self.cache[key] = value
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return value

    def _grid(self, k: int) -> torch.Tensor:
        """W at grid point k of [0, 2**depth] (u = U_MIN + k * leaf)."""
        hit = self.cache.get(k)
        if hit is not None:
            self.cache.move_to_end(k)
            return hit
        if k == 0:
            return self._remember(k, torch.zeros((len(self.keys),) + self.shape, device=self.device, dtype=self.draw))
        if k == self.n:
            return self._remember(k, math.sqrt(self.U_MAX - self.U_MIN) * self._gauss(-1))
        step = k & -k  # distance to the two parents of this dyadic point
        left, right = self._grid(k - step), self._grid(k + step)
        # Brownian bridge midpoint: variance (2*step*leaf) / 4; built in place on the draw
        value = self._gauss(k).mul_(math.sqrt(step * self.leaf / 2.0))
        value.add_(left, alpha=0.5).add_(right, alpha=0.5)
        return self._remember(k, value)

    @staticmethod
    def _bits(u: float) -> int:
        return struct.unpack("<q", struct.pack("<d", u))[0]

    def _snap(self, u: float):
        """(grid index or None outside the range, the u the path is evaluated at)."""
        if self.U_MIN <= u <= self.U_MAX:
            k = min(max(int(round((u - self.U_MIN) / self.leaf)), 0), self.n)
            return k, self.U_MIN + k * self.leaf
        return None, u

    def _outside(self, u: float) -> torch.Tensor:
        """W(u) beyond the tree's range: Brownian motion given the values known there."""
        side = -1 if u < self.U_MIN else 1
        known = self.outside[side]
        for v, w in known:
            if v == u:
                return w
        edge = (self.U_MIN, self._grid(0)) if side < 0 else (self.U_MAX, self._grid(self.n))
        lo = hi = None
        for v, w in known + [edge]:
            if v < u and (lo is None or v > lo[0]):
                lo = (v, w)
            if v > u and (hi is None or v < hi[0]):
                hi = (v, w)
        z = self._gauss(mix_seed(0xB71D6E, self._bits(u)))
        if lo is not None and hi is not None:  # Brownian bridge between the neighbours
            f = (u - lo[0]) / (hi[0] - lo[0])
            value = lo[1] + f * (hi[1] - lo[1]) + math.sqrt(f * (hi[0] - u)) * z
        elif lo is not None:  # free increment beyond the last known point
            value = lo[1] + math.sqrt(u - lo[0]) * z
        else:
            value = hi[1] + math.sqrt(hi[0] - u) * z
        known.append((u, value))
        if len(known) > 64:
            known.pop(0)
        return value

    def _at(self, u: float) -> torch.Tensor:
        k, _ = self._snap(u)
        return self._outside(u) if k is None else self._grid(k)

    def _u(self, sigma) -> float:
        """The path's time of ``sigma``: log(sigma); sigma = 0 (a host's last step) is the
        tree's lowest point, so a step to it reads the path down to sigma ~1.1e-7."""
        s = float(sigma)
        if not s >= 0.0:  # negative or NaN
            raise ValueError(f"Brownian noise needs sigmas >= 0, got {s}")
        return math.log(s) if s > 0.0 else self.U_MIN

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        u0, u1 = self._u(sigma), self._u(sigma_next)
        if u0 == u1:
            raise ValueError("Brownian noise needs an interval of positive length")
        (k0, v0), (k1, v1) = self._snap(u0), self._snap(u1)
        if k0 is not None and k0 == k1:  # shorter than a leaf: a fresh normal for this interval
            z = self._gauss(mix_seed(0x5B1EAF, self._bits(u0), self._bits(u1)))
            return z.to(self.dtype)
        w = self._at(u1) - self._at(u0)
        return (w / math.sqrt(abs(v1 - v0))).to(self.dtype)


def make_noise_sampler(
    x: torch.Tensor,
    extra_args: dict,
    noise_sampler: Optional[NoiseSampler],
    noise_type: str,
) -> NoiseSampler:
    """The injected ``noise_sampler`` if given, else a seeded one of ``noise_type``."""
    if noise_sampler is not None:
        return noise_sampler
    seeds = batch_seeds(x.shape[0], extra_args.get("seed"))
    if noise_type == "gaussian":
        return GaussianNoise(x, seeds)
    if noise_type == "brownian":
        return BrownianNoise(x, seeds)
    raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")


class StageNoise:
    """Markov-preserving noise of a multi-stage step (SEEDS, docs/algorithms.md, SEEDS).

    Stage k's noise is ``N_k = a_k * N_{k-1} + b_k * xi_k`` with ``xi_k`` the unit
    increment of the noise sampler on sub-interval k. With the weights from the exact
    OU/Brownian integrals, every stage noise and the final noise have exactly the right
    variances and cross-covariances.
    """

    def __init__(self, a: Sequence[float], b: Sequence[float], bounds: Sequence[tuple]):
        self.a = list(a)
        self.b = list(b)
        self.bounds = list(bounds)

    def stage(self, k: int, prev: Optional[torch.Tensor], noise_sampler: NoiseSampler) -> torch.Tensor:
        xi = noise_sampler(*self.bounds[k])
        if prev is None:
            return xi * self.b[k]
        return torch.mul(prev, self.a[k]).add_(xi, alpha=self.b[k])
