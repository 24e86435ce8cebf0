"""Measured convergence orders on the analytic Gaussian-mixture model (exact denoiser).

* Deterministic variants (eta = 0): global error at the last sigma against a reference
  solve of the probability-flow ODE by classical RK4 in lambda (float64, 1000 steps;
  its own error, estimated from a 500-step solve, is checked to be below 1 % of the
  errors measured). The order is the
  least-squares slope of log(error) against log(steps); it must match the theory +-0.3.
* SDE variants: strong order (RMS pathwise error, Brownian noise -- one path whatever the
  step count -- against a fine-step solve on the same path) and weak order (error of
  E ||x||^2 / d at sigma_min, known exactly under the mixture; estimated with the coarse
  and the fine solve coupled through one Brownian path, which keeps its Monte-Carlo error
  small). The measured values are documented in docs/orders.md and asserted here within
  a tolerance derived from their statistical uncertainty.

Run ``python tests/test_convergence.py`` to print the table of docs/orders.md.
"""

from __future__ import annotations

import math
from pathlib import Path
import sys
from typing import Callable, Dict, List, Sequence

import numpy as np
import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture
from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.schedules import logsnr_uniform_sigmas
from seeds_samplers.samplers.seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def _mixture(shape, sep, seed, stds=(0.15, 0.3, 0.5, 0.25), weights=(0.4, 0.3, 0.2, 0.1)):
    g = torch.Generator().manual_seed(seed)
    means = sep * torch.randn((len(stds),) + tuple(shape), generator=g, dtype=F64)
    return GaussianMixture(means, list(stds), list(weights))


def ls_slope(ns: Sequence[int], errs: Sequence[float]) -> float:
    """Order = -slope of the least-squares line through (log n, log err)."""
    return -float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


def _slope_weights(ns):
    x = np.log(np.asarray(ns, dtype=float))
    return -(x - x.mean()) / ((x - x.mean()) ** 2).sum()


# --- solver table ---------------------------------------------------------------------------

Solver = Callable[..., torch.Tensor]
S1, S2, S3, ER = sample_seeds_1, sample_seeds_2, sample_seeds_3, sample_er_sde

DETERMINISTIC = {
    # name: (function, parameters, theoretical order, step counts)
    "SEEDS-1 (data)": (S1, dict(eta=0.0), 1, (16, 32, 64, 128)),
    "SEEDS-1 (noise)": (S1, dict(eta=0.0, prediction="noise"), 1, (16, 32, 64, 128)),
    "SEEDS-2 phi_1 (data)": (S2, dict(eta=0.0), 2, (64, 128, 256, 512)),
    "SEEDS-2 phi_2 (data)": (S2, dict(eta=0.0, variant="phi_2"), 2, (64, 128, 256, 512)),
    "SEEDS-2 phi_1 (noise)": (S2, dict(eta=0.0, prediction="noise"), 2, (64, 128, 256, 512)),
    "SEEDS-2 phi_2 (noise)": (S2, dict(eta=0.0, prediction="noise", variant="phi_2"), 2, (64, 128, 256, 512)),
    "SEEDS-3 (data)": (S3, dict(eta=0.0), 3, (64, 128, 256, 512)),
    "SEEDS-3 (noise)": (S3, dict(eta=0.0, prediction="noise"), 3, (64, 128, 256, 512)),
    "ER-SDE-1 (eta=0)": (ER, dict(order=1, eta=0.0), 1, (16, 32, 64, 128)),
    "ER-SDE-2 (eta=0)": (ER, dict(order=2, eta=0.0), 2, (64, 128, 256, 512)),
    "ER-SDE-3 (eta=0)": (ER, dict(order=3, eta=0.0), 3, (64, 128, 256, 512)),
}

# Deterministic problem: VE-equivalent sigma from 80 to 0.05, uniform in lambda.
DET_RANGE = (0.05, 80.0)
DET_BATCH = 4


def _det_problem(kind: str):
    mix = _mixture((3, 8, 8), 1.0, 0)
    model = AnalyticDenoiser(mix, kind=kind)
    lo, hi = DET_RANGE
    ve = AnalyticDenoiser(mix, kind="edm")
    y0 = ve.prior_sample(DET_BATCH, hi, torch.Generator().manual_seed(1))
    if kind == "flow":  # the same problem in flow variables: sigma = s / (1 + s), x = (1 - sigma) y
        lo, hi = lo / (1 + lo), hi / (1 + hi)
        x0 = (1 - hi) * y0
    else:
        x0 = y0
    return model, ve, x0, y0, lo, hi


def rk4_reference(ve_model, y0, s_hi, s_lo, n):
    """Probability-flow ODE in VE-equivalent variables, dy/dlambda = D(y, e^-lambda) - y."""
    l0, l1 = -math.log(s_hi), -math.log(s_lo)
    h = (l1 - l0) / n
    b = y0.shape[0]

    def f(y, lam):
        return ve_model(y, torch.full((b,), math.exp(-lam), dtype=F64)) - y

    y, lam = y0.clone(), l0
    for _ in range(n):
        k1 = f(y, lam)
        k2 = f(y + 0.5 * h * k1, lam + 0.5 * h)
        k3 = f(y + 0.5 * h * k2, lam + 0.5 * h)
        k4 = f(y + h * k3, lam + h)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        lam += h
    return y


_DET_REF: dict = {}


def deterministic_reference():
    """RK4 with 1000 steps, and its error estimated from a 500-step solve (RK4 error ~ h^4:
    err(1000) ~ |y(1000) - y(500)| / 15)."""
    if not _DET_REF:
        _, ve, _, y0, _, _ = _det_problem("edm")
        ref = rk4_reference(ve, y0, *DET_RANGE[::-1], 1000)
        coarse = rk4_reference(ve, y0, *DET_RANGE[::-1], 500)
        _DET_REF.update(ref=ref, err=(ref - coarse).abs().max().item() / 15)
    return _DET_REF["ref"], _DET_REF["err"]


def measure_deterministic(kind: str, names: Sequence[str]) -> Dict[str, dict]:
    model, ve, x0, y0, lo, hi = _det_problem(kind)
    ref, ref_err = deterministic_reference()
    if kind == "flow":
        ref = (1 - lo) * ref
    out = {}
    for name in names:
        fn, params, order, ns = DETERMINISTIC[name]
        errs = []
        for n in ns:
            sig = logsnr_uniform_sigmas(n + 1, lo, hi, model_type=model.seeds_model_type)[:-1]
            got = fn(model, x0.clone(), sig, disable=True, **params)
            errs.append((got - ref).abs().max().item())
        out[name] = dict(ns=ns, errs=errs, order=ls_slope(ns, errs), theory=order, ref_err=ref_err)
    return out


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_deterministic_order(kind, name):
    res = measure_deterministic(kind, [name])[name]
    # the reference is accurate far beyond the smallest error measured
    assert res["ref_err"] < 1e-2 * min(res["errs"])
    assert min(res["errs"]) > 1e-11  # well above float64 round-off
    assert abs(res["order"] - res["theory"]) <= 0.3, res


# --- strong order ---------------------------------------------------------------------------

SDE = {
    # name: (function, parameters, reference key)
    "SEEDS-1 (data)": (S1, dict(), "reverse"),
    "SEEDS-2 (data)": (S2, dict(), "reverse"),
    "SEEDS-3 (data)": (S3, dict(), "reverse"),
    "SEEDS-1 (noise)": (S1, dict(prediction="noise"), "reverse"),
    "SEEDS-2 (noise)": (S2, dict(prediction="noise"), "reverse"),
    "SEEDS-3 (noise)": (S3, dict(prediction="noise"), "reverse"),
    "ER-SDE-1 (sde_5)": (ER, dict(order=1), "sde_5"),
    "ER-SDE-2 (sde_5)": (ER, dict(order=2), "sde_5"),
    "ER-SDE-3 (sde_5)": (ER, dict(order=3), "sde_5"),
}
# Documented measurements (docs/orders.md); see the module docstring.
STRONG = {
    "SEEDS-1 (data)": 0.91,
    "SEEDS-2 (data)": 0.87,
    "SEEDS-3 (data)": 0.81,
    "SEEDS-1 (noise)": 1.04,
    "SEEDS-2 (noise)": 1.47,
    "SEEDS-3 (noise)": 1.32,
    "ER-SDE-1 (sde_5)": 0.96,
    "ER-SDE-2 (sde_5)": 1.24,
    "ER-SDE-3 (sde_5)": 1.13,
}
STRONG_NS = (8, 16, 32, 64)
STRONG_RANGE = (0.02, 2.0)  # below sigma ~ 2 each path has chosen its mixture component
STRONG_BATCH = 8


def _strong_problem():
    mix = _mixture((3, 8, 8), 1.0, 0)
    model = AnalyticDenoiser(mix, kind="edm")
    x0 = model.prior_sample(STRONG_BATCH, STRONG_RANGE[1], torch.Generator().manual_seed(5))
    return model, x0


def _strong_sig(n):
    return logsnr_uniform_sigmas(n + 1, *STRONG_RANGE)[:-1]


def _brownian_run(fn, model, x0, n, **params):
    return fn(model, x0.clone(), _strong_sig(n), extra_args={"seed": 1234}, noise_type="brownian",
              disable=True, **params)


_STRONG_REFS: dict = {}


def strong_references():
    """Fine solves on the same Brownian path: the reverse SDE (eta = 1) by SEEDS-3 with 256
    steps, cross-checked by ER-SDE-3 with phi = s^2 (the same SDE) with 768 steps; the
    sde_5 ER-SDE by ER-SDE-3 with 768 steps."""
    if not _STRONG_REFS:
        model, x0 = _strong_problem()
        _STRONG_REFS["reverse"] = _brownian_run(S3, model, x0, 256)
        _STRONG_REFS["reverse_check"] = _brownian_run(ER, model, x0, 768, order=3,
                                                      noise_scale_function="original_sde")
        _STRONG_REFS["sde_5"] = _brownian_run(ER, model, x0, 768, order=3)
    return _STRONG_REFS


def measure_strong(names: Sequence[str]) -> Dict[str, dict]:
    model, x0 = _strong_problem()
    refs = strong_references()
    out = {}
    for name in names:
        fn, params, key = SDE[name]
        per_sample = []  # [n][b]: mean squared error of sample b
        for n in STRONG_NS:
            d = _brownian_run(fn, model, x0, n, **params) - refs[key]
            per_sample.append(d.flatten(1).pow(2).mean(1))
        mse = torch.stack(per_sample)  # [N, B]
        rms = mse.mean(1).sqrt().tolist()
        order = ls_slope(STRONG_NS, rms)
        # jackknife over the sample paths
        jack = [ls_slope(STRONG_NS, torch.cat([mse[:, :b], mse[:, b + 1:]], 1).mean(1).sqrt().tolist())
                for b in range(mse.shape[1])]
        m = mse.shape[1]
        se = math.sqrt((m - 1) / m * sum((j - np.mean(jack)) ** 2 for j in jack))
        out[name] = dict(ns=STRONG_NS, errs=rms, order=order, se=se)
    return out


def test_strong_reference_is_accurate_and_independent():
    refs = strong_references()
    res = measure_strong(["SEEDS-3 (data)"])["SEEDS-3 (data)"]
    gap = (refs["reverse"] - refs["reverse_check"]).pow(2).mean().sqrt().item()
    # the reference's own error (~gap) moves the smallest error measured by < 5 %
    assert gap < 0.3 * min(res["errs"]), (gap, res["errs"])


@pytest.mark.parametrize("name", list(SDE))
def test_strong_order(name):
    res = measure_strong([name])[name]
    assert abs(res["order"] - STRONG[name]) <= max(4 * res["se"], 0.05), res
    # additive noise: every variant converges pathwise with order about 1 (pre-asymptotic
    # slopes of the noise-prediction variants are still above it on this range)
    assert 0.7 <= res["order"] <= 1.6


# --- weak order -----------------------------------------------------------------------------


class GridBrownian:
    """One Brownian path, exact on a uniform lambda grid with G intervals; the unit noise of
    an interval between grid points is the normalised sum of its grid increments, each
    regenerated from its own seed (so every solver, at any step count on the grid, sees
    the same path). Batched with one generator: fast for large Monte-Carlo batches."""

    def __init__(self, shape, s_hi, s_lo, grid, seed):
        self.shape, self.seed = shape, seed
        self.l0 = -math.log(s_hi)
        self.dl = (-math.log(s_lo) - self.l0) / grid
        self.gen = torch.Generator()

    def _index(self, sigma):
        p = (-math.log(float(sigma)) - self.l0) / self.dl
        j = round(p)
        assert abs(p - j) < 1e-6, "sigma not on the Brownian grid"
        return j

    def __call__(self, sigma, sigma_next):
        a, b = self._index(sigma), self._index(sigma_next)
        total = torch.zeros(self.shape, dtype=F64)
        for j in range(a, b):
            self.gen.manual_seed(self.seed * 1_000_003 + j)
            total += torch.randn(self.shape, generator=self.gen, dtype=F64)
        return total / math.sqrt(b - a)


WEAK = {
    # name: (function, parameters, reference key, step counts)
    "SEEDS-1 (data)": (S1, dict(), "reverse", (4, 8, 16, 32)),
    "SEEDS-2 (data)": (S2, dict(), "reverse", (4, 8, 16)),
    "SEEDS-3 (data)": (S3, dict(), "reverse", (4, 8, 16, 32)),
    "ER-SDE-1 (sde_5)": (ER, dict(order=1), "sde_5", (4, 8, 16, 32)),
    "ER-SDE-2 (sde_5)": (ER, dict(order=2), "sde_5", (4, 8, 16, 32)),
    "ER-SDE-3 (sde_5)": (ER, dict(order=3), "sde_5", (4, 8, 16, 32)),
}
WEAK_DOC = {  # documented measurements (docs/orders.md); None: below the Monte-Carlo resolution
    "SEEDS-1 (data)": 0.94,
    "SEEDS-2 (data)": 1.53,
    "SEEDS-3 (data)": None,
    "ER-SDE-1 (sde_5)": 0.97,
    "ER-SDE-2 (sde_5)": 1.82,
    "ER-SDE-3 (sde_5)": 2.18,
}
WEAK_RANGE = (0.02, 10.0)
WEAK_BATCH = 10000
WEAK_GRID = 384  # multiple of 3 x 128 (SEEDS-3 reference) and of 2 x 32, 3 x 32


def _weak_problem():
    g = torch.Generator().manual_seed(3)
    means = 1.5 * torch.randn((3, 1, 2, 2), generator=g, dtype=F64)
    mix = GaussianMixture(means, [0.2, 0.5, 0.35], [0.5, 0.3, 0.2])
    model = AnalyticDenoiser(mix, kind="edm")
    x0 = model.prior_sample(WEAK_BATCH, WEAK_RANGE[1], torch.Generator().manual_seed(11))
    lo = WEAK_RANGE[0]
    exact = float((mix.weights * ((mix._flat**2).mean(1) + mix.stds**2 + lo * lo)).sum())
    return model, x0, exact


def _weak_f(x):
    return x.flatten(1).pow(2).mean(1)


def _weak_run(fn, model, x0, n, **params):
    ns = GridBrownian(x0.shape, WEAK_RANGE[1], WEAK_RANGE[0], WEAK_GRID, seed=5)
    sig = logsnr_uniform_sigmas(n + 1, *WEAK_RANGE)[:-1]
    return _weak_f(fn(model, x0.clone(), sig, noise_sampler=ns, disable=True, **params))


_WEAK_REFS: dict = {}


def weak_references():
    if not _WEAK_REFS:
        model, x0, exact = _weak_problem()
        _WEAK_REFS["exact"] = exact
        _WEAK_REFS["reverse"] = _weak_run(S3, model, x0, 128)
        _WEAK_REFS["sde_5"] = _weak_run(ER, model, x0, 384, order=3)
    return _WEAK_REFS


def measure_weak(names: Sequence[str]) -> Dict[str, dict]:
    model, x0, _ = _weak_problem()
    refs = weak_references()
    out = {}
    for name in names:
        fn, params, key, ns = WEAK[name]
        errs, ses = [], []
        for n in ns:
            d = _weak_run(fn, model, x0, n, **params) - refs[key]
            errs.append(d.mean().item())
            ses.append(d.std().item() / math.sqrt(d.numel()))
        res = dict(ns=ns, errs=errs, ses=ses)
        resolved = all(abs(e) > 4 * s for e, s in zip(errs, ses))
        if resolved:
            w = _slope_weights(ns)
            res["order"] = ls_slope(ns, [abs(e) for e in errs])
            res["se"] = math.sqrt(sum((wi * s / e) ** 2 for wi, s, e in zip(w, ses, errs)))
        else:
            res["order"] = None
        out[name] = res
    return out


def test_weak_references_match_the_exact_expectation():
    refs = weak_references()
    for key in ("reverse", "sde_5"):
        f = refs[key]
        se = f.std().item() / math.sqrt(f.numel())
        assert abs(f.mean().item() - refs["exact"]) <= 4 * se, key


@pytest.mark.parametrize("name", list(WEAK))
def test_weak_order(name):
    res = measure_weak([name])[name]
    doc = WEAK_DOC[name]
    if doc is None:
        # resolved at the coarsest step count only, then below the Monte-Carlo error
        s2 = measure_weak(["SEEDS-2 (data)"])["SEEDS-2 (data)"]
        for e, s, e2 in zip(res["errs"][1:], res["ses"][1:], s2["errs"][1:]):
            assert abs(e) <= 4 * s + 0.1 * abs(e2)
        return
    assert res["order"] is not None, res
    assert abs(res["order"] - doc) <= max(4 * res["se"], 0.05), res


# --- the table of docs/orders.md --------------------------------------------------------------


def _fmt(errs):
    return ", ".join(f"{e:.2e}" for e in errs)


def main() -> None:  # pragma: no cover - documentation helper
    torch.set_num_threads(1)
    print("## Deterministic variants (eta = 0): global error vs RK4 reference\n")
    for kind in ("edm", "flow"):
        res = measure_deterministic(kind, list(DETERMINISTIC))
        print(f"### {kind} (VE-equivalent sigma {DET_RANGE[1]} -> {DET_RANGE[0]}, uniform in lambda)\n")
        print("| solver | theory | measured | steps | max-abs errors |")
        print("|---|---|---|---|---|")
        for name, r in res.items():
            print(f"| {name} | {r['theory']} | {r['order']:.2f} | {', '.join(map(str, r['ns']))} | {_fmt(r['errs'])} |")
        print()
    print(f"## Strong order (Brownian noise, sigma {STRONG_RANGE[1]} -> {STRONG_RANGE[0]}, {STRONG_BATCH} paths)\n")
    print("| solver | measured | jackknife s.e. | steps | RMS errors |")
    print("|---|---|---|---|---|")
    for name, r in measure_strong(list(SDE)).items():
        print(f"| {name} | {r['order']:.2f} | {r['se']:.2f} | {', '.join(map(str, r['ns']))} | {_fmt(r['errs'])} |")
    print(f"\n## Weak order (E||x||^2/d at sigma_min, sigma {WEAK_RANGE[1]} -> {WEAK_RANGE[0]}, {WEAK_BATCH} coupled samples)\n")
    refs = weak_references()
    print(f"exact E||x||^2/d = {refs['exact']:.5f}; references: "
          + ", ".join(f"{k} {refs[k].mean().item():.5f} +- {refs[k].std().item() / math.sqrt(WEAK_BATCH):.5f}"
                      for k in ("reverse", "sde_5")) + "\n")
    print("| solver | measured | s.e. | steps | weak errors (+- s.e.) |")
    print("|---|---|---|---|---|")
    for name, r in measure_weak(list(WEAK)).items():
        errs = ", ".join(f"{e:.2e} +- {s:.0e}" for e, s in zip(r["errs"], r["ses"]))
        order = "unresolved" if r["order"] is None else f"{r['order']:.2f}"
        se = "" if r["order"] is None else f"{r['se']:.2f}"
        print(f"| {name} | {order} | {se} | {', '.join(map(str, r['ns']))} | {errs} |")


if __name__ == "__main__":  # pragma: no cover
    # ``--readme README.md`` also writes the tables into the README's orders section.
    if len(sys.argv) == 3 and sys.argv[1] == "--readme":
        import contextlib
        import io

        from seeds_samplers.bench.report import replace_section

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            main()
        print(buf.getvalue())
        body = ("Command: `python tests/test_convergence.py --readme README.md`; the set-up and how to read "
                "the SDE columns are in [docs/orders.md](docs/orders.md). DEIS and iPNDM orders are asserted "
                "by `tests/test_deis.py` (theory ±0.3, VE and flow).\n\n" + buf.getvalue().replace("## ", "#### "))
        replace_section(Path(sys.argv[2]), "orders", body)
    else:
        main()
    sys.exit(0)
