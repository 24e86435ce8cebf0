"""The AMED interval updates (Zhou et al., CVPR 2024, arXiv 2312.00094; docs/amed.md): one
interval [sigma_i, sigma_{i+1}] of AMED-Solver or of AMED-Plugin on each base solver, in
VE-equivalent variables, shared by the samplers (:mod:`.amed`) and the distillation
trainer (:mod:`seeds_samplers.amed.train`). The update rules are listed in :mod:`.amed`.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .ipndm import IPNDM_WEIGHTS

__all__ = ["AMEDCore", "AMED_SOLVERS", "PLUGIN_BASES", "PREDICTIONS", "MAX_ORDERS", "batch_view", "check_solver_config",
           "feature_positions"]

PLUGIN_BASES = ("dpm_2", "euler", "ipndm", "dpmpp_2m", "deis")
AMED_SOLVERS = ("amed",) + PLUGIN_BASES
PREDICTIONS = ("data", "noise")
MAX_ORDERS = {"ipndm": 4, "deis": 4, "dpmpp_2m": 3}
# Gauss-Legendre nodes/weights on [0, 1], 4 points: exact for the Lagrange bases (degree <= 3).
_GL_U, _GL_W = np.polynomial.legendre.leggauss(4)
GL_NODES = tuple(float(u) for u in 0.5 * (_GL_U + 1.0))
GL_WEIGHTS = tuple(float(w) for w in 0.5 * _GL_W)


def check_solver_config(solver: str, max_order: int, prediction: str) -> None:
    """Raise ``ValueError`` naming a bad solver / order / prediction setting."""
    if solver not in AMED_SOLVERS:
        raise ValueError(f"AMED solver must be one of {AMED_SOLVERS}, got {solver!r}")
    if solver in MAX_ORDERS:
        top = MAX_ORDERS[solver]
        if isinstance(max_order, bool) or max_order not in range(1, top + 1):
            raise ValueError(f"max_order for the {solver} plugin must be an integer from 1 to {top}, got {max_order!r}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def feature_positions(feature: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, W] channel-mean map -> [B, size] by adaptive average pooling to sqrt(size)^2
    (identity for an 8 x 8 map and the official 64-input predictor)."""
    side = int(round(math.sqrt(size)))
    if feature.ndim == 2:
        if feature.shape[1] == size:
            return feature
        hw = int(round(math.sqrt(feature.shape[1])))
        feature = feature.reshape(feature.shape[0], hw, -1)
    if tuple(feature.shape[-2:]) != (side, side):
        feature = torch.nn.functional.adaptive_avg_pool2d(feature.unsqueeze(1).float(), (side, side))[:, 0]
    return feature.reshape(feature.shape[0], -1)


def batch_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape((-1,) + (1,) * (ndim - 1))


class AMEDCore:
    """The AMED interval updates in VE-equivalent variables, shared by the samplers and the
    distillation trainer (:mod:`seeds_samplers.amed.train`).

    Args:
        solver: ``"amed"`` or a plugin base in :data:`PLUGIN_BASES`.
        ve: the positive VE-equivalent grid s_0 > ... > s_{K-1} (float64 host values).
        call: ``call(y, s) -> D`` with ``s`` a [B] tensor of VE-equivalent noise levels.
        max_order: multistep plugins: number of history values (warm-up below).
        prediction: ``dpmpp_2m`` only: ``"data"`` (DPM-Solver++) or ``"noise"``.
        lower_order_final: ``dpmpp_2m`` only: the official rule over the interleaved grid
            (the last sub-step first order, the one before at most second).
    """

    def __init__(self, solver: str, ve: Sequence[float], call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 max_order: int = 2, prediction: str = "data", lower_order_final: bool = True):
        check_solver_config(solver, max_order, prediction)
        self.solver = solver
        self.ve = [float(v) for v in ve]
        if len(self.ve) < 1 or not all(v > 0 for v in self.ve):
            raise ValueError("the AMED grid must consist of positive noise levels")
        self.call = call
        self.max_order = int(max_order)
        self.prediction = prediction
        self.lower_order_final = bool(lower_order_final)
        self.substeps = 2 * (len(self.ve) - 1)
        self.reset()

    def reset(self) -> None:
        """Forget the multistep history (a new trajectory)."""
        self.hist_d: List[torch.Tensor] = []      # d values, newest first (ipndm, deis)
        self.hist_s: List[torch.Tensor] = []      # their s (deis)
        self.prev_m: List[torch.Tensor] = []      # dpmpp: previous model outputs, newest first
        self.prev_lam: List[torch.Tensor] = []    # their lambda = -log s
        self.sub = 0                               # sub-step counter over the interleaved grid

    # --- helpers ------------------------------------------------------------------------
    @staticmethod
    def afs_direction(y: torch.Tensor, s: float) -> torch.Tensor:
        """Analytical first step (paper Sec. 3.4): d_0 = y_0 / sqrt(1 + s_0^2)."""
        return y * (1.0 / math.sqrt(1.0 + s * s))

    def sigma_m(self, r: torch.Tensor, i: int, dtype: torch.dtype) -> torch.Tensor:
        """Per-sample s_m = s_{i+1}^r s_i^(1-r) in ``dtype`` ([B])."""
        r = r.to(dtype)
        return torch.exp((1 - r) * math.log(self.ve[i]) + r * math.log(self.ve[i + 1]))

    def _push(self, d: torch.Tensor, s: torch.Tensor) -> None:
        self.hist_d.insert(0, d)
        self.hist_s.insert(0, s)
        del self.hist_d[self.max_order:], self.hist_s[self.max_order:]

    def _ab(self, y: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        """One Adams-Bashforth sub-step over the history (fixed iPNDM or rhoAB-DEIS weights);
        ``s0``/``s1`` are [B] (per sample), ``c`` scales the increment."""
        n = y.ndim
        k = len(self.hist_d)
        h = s1 - s0
        if self.solver == "ipndm" or k == 1:
            inc = sum(self.hist_d[j] * IPNDM_WEIGHTS[k - 1][j] for j in range(k))
            inc = inc * batch_view(h, n).to(y.dtype)
        else:
            # C_j = h * int_0^1 l_j(v) dv with nodes v_m = (s_m - s0) / h (O(1) values)
            v = torch.stack([(s - s0) / h for s in self.hist_s], dim=1)           # [B, k]
            u = torch.tensor(GL_NODES, dtype=v.dtype, device=v.device)              # [Q]
            w = torch.tensor(GL_WEIGHTS, dtype=v.dtype, device=v.device)
            coefs = []
            for j in range(k):
                lj = torch.ones(v.shape[0], len(GL_NODES), dtype=v.dtype, device=v.device)
                for m in range(k):
                    if m != j:
                        lj = lj * (u[None, :] - v[:, m:m + 1]) / (v[:, j:j + 1] - v[:, m:m + 1])
                coefs.append(h * (lj * w[None, :]).sum(1))
            inc = sum(self.hist_d[j] * batch_view(coefs[j], n).to(y.dtype) for j in range(k))
        if c is not None:
            inc = inc * batch_view(c, n).to(y.dtype)
        return y + inc

    def _dpmpp(self, y: torch.Tensor, m: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor,
               c: Optional[torch.Tensor]) -> torch.Tensor:
        """One DPM-Solver(++) multistep sub-step from s0 to s1 ([B] each) with model output m
        (Lu et al. 2022, arXiv 2211.01095, multistep updates of order 1-3, in VE-equivalent
        variables: alpha = 1, sigma = s, h = lambda_1 - lambda_0 with lambda = -log s).

        Order 2 is the 2M form (m + (m - m_prev) / (2 r0)); order 3 the update of the
        exponential integrator with the model output's first and second derivatives in
        lambda taken from the last three outputs (divided differences on the uneven nodes),
        exact when the output is quadratic in lambda. ``c`` scales the model terms."""
        n = y.ndim
        lam0, lam1 = -torch.log(s0), -torch.log(s1)
        h = lam1 - lam0
        order = min(self.max_order, self.sub + 1, len(self.prev_m) + 1)
        if self.lower_order_final:
            order = min(order, self.substeps - self.sub)

        def bv(t: torch.Tensor) -> torch.Tensor:
            return batch_view(t, n).to(y.dtype)

        scale = (lambda t: t) if c is None else (lambda t: t * bv(c))
        data = self.prediction == "data"
        if order <= 2:
            mm = m
            if order == 2:
                r0 = (lam0 - self.prev_lam[0]) / h
                mm = m + (m - self.prev_m[0]) * bv(0.5 / r0)
            mm = scale(mm)
            if data:   # y1 = (s1/s0) y0 + (1 - e^{-h}) D'
                out = y * bv(s1 / s0) + mm * bv(-torch.expm1(-h))
            else:      # y1 = y0 + (s1 - s0) eps'
                out = y + mm * bv(s1 - s0)
        else:
            r0 = (lam0 - self.prev_lam[0]) / h
            r1 = (self.prev_lam[0] - self.prev_lam[1]) / h
            d1_0 = (m - self.prev_m[0]) * bv(1.0 / r0)
            d1_1 = (self.prev_m[0] - self.prev_m[1]) * bv(1.0 / r1)
            d1 = d1_0 + (d1_0 - d1_1) * bv(r0 / (r0 + r1))
            # h^2 times the second derivative in lambda: twice the ``D2`` of k-diffusion's
            # dpmpp_3m_sde, whose update weights it by one half and so is not exact for a
            # model output quadratic in lambda (tests/test_amed.py checks this one is)
            d2 = (d1_0 - d1_1) * bv(2.0 / (r0 + r1))
            if data:
                phi1 = torch.expm1(-h)
                phi2 = phi1 / h + 1.0
                phi3 = phi2 / h - 0.5
                out = y * bv(s1 / s0) + scale(m * bv(-phi1) + d1 * bv(phi2) - d2 * bv(phi3))
            else:
                phi1 = torch.expm1(h)
                phi2 = phi1 / h - 1.0
                phi3 = phi2 / h - 0.5
                out = y - scale(m * bv(phi1) + d1 * bv(phi2) + d2 * bv(phi3)) * bv(s1)
        self.prev_m.insert(0, m)
        self.prev_lam.insert(0, lam0)
        del self.prev_m[2:], self.prev_lam[2:]
        self.sub += 1
        return out

    # --- one interval -----------------------------------------------------------------
    def step(self, i: int, y: torch.Tensor, denoised: Optional[torch.Tensor], r: torch.Tensor,
             c_dir: torch.Tensor, a_time: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Interval i: from y at s_i to s_{i+1}. ``denoised`` is D(y_i, s_i), or None for AFS.

        ``r``, ``c_dir``, ``a_time`` are [B]. Returns (y_{i+1}, D_m).
        """
        n = y.ndim
        cdt = torch.float32 if y.device.type == "mps" else torch.float64
        s0, s1 = self.ve[i], self.ve[i + 1]
        d_i = self.afs_direction(y, s0) if denoised is None else (y - denoised) * (1.0 / s0)
        sm = self.sigma_m(r, i, cdt)                                             # [B]
        b = y.shape[0]
        s0_t = torch.full((b,), s0, dtype=cdt, device=y.device)
        s1_t = torch.full((b,), s1, dtype=cdt, device=y.device)
        solver = self.solver
        c = c_dir.to(cdt)
        if solver in ("ipndm", "deis"):
            self._push(d_i, s0_t)
            y_m = self._ab(y, s0_t, sm, None)
        elif solver == "dpmpp_2m":
            if self.prediction == "noise":
                m_i = d_i
            else:  # with AFS the data prediction implied by d_0
                m_i = denoised if denoised is not None else y - d_i * s0
            y_m = self._dpmpp(y, m_i, s0_t, sm, None)
        else:
            y_m = y + d_i * batch_view(sm - s0, n).to(y.dtype)
        s_eval = sm * a_time.to(cdt)
        den_m = self.call(y_m, s_eval)
        d_m = (y_m - den_m) / batch_view(sm, n).to(y.dtype)
        if solver == "amed":
            y1 = y + d_m * batch_view(c * (s1 - s0), n).to(y.dtype)
        elif solver == "euler":
            y1 = y_m + d_m * batch_view(c * (s1 - sm), n).to(y.dtype)
        elif solver == "dpm_2":
            rr = r.to(cdt)
            w_m = 1.0 / (2.0 * rr)
            y1 = y + (d_m * batch_view(w_m, n).to(y.dtype) + d_i * batch_view(1.0 - w_m, n).to(y.dtype)) \
                * batch_view(c * (s1 - s0), n).to(y.dtype)
        elif solver in ("ipndm", "deis"):
            self._push(d_m, sm)
            y1 = self._ab(y_m, sm, s1_t, c)
        else:  # dpmpp_2m
            m_m = den_m if self.prediction == "data" else d_m
            y1 = self._dpmpp(y_m, m_m, sm, s1_t, c)
        return y1, den_m
