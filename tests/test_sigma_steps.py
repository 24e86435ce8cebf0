"""Steps taken in sigma (samplers/run.py): the Runge-Kutta and Adams-Bashforth rules are
exact where they must be, they switch on only where measured better (long deterministic
lambda-steps near sigma = 0; a flow model's final step), and they restore accuracy on
the host schedules where lambda-steps lose it. Also the noise window."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seeds_samplers.bench.compare import reference_solve
from seeds_samplers.bench.sigma_steps import CASES as CASES_ORDER
from seeds_samplers.bench.sigma_steps import EXCEPTIONS as ORDER_EXCEPTIONS
from seeds_samplers.bench.sigma_steps import SOLVERS as SOLVERS_ORDER
from seeds_samplers.bench.sigma_steps import errors as order_errors
from seeds_samplers.bench.sigma_steps import slope as order_slope
from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture
from seeds_samplers.samplers import SAMPLERS
from seeds_samplers.samplers.lagrange import rhoab_coefficients
from seeds_samplers.samplers.model_types import FLOW, VE
from seeds_samplers.samplers.run import (FINAL_AB_LAMBDA, FINAL_LINEAR_LAMBDA, HEAD_LAMBDA, History, Method, SamplerRun,
                                         StepMode, Variable)
from seeds_samplers.samplers.runge_kutta import SIGMA_STEP_TABLEAUS, rk_plan
from seeds_samplers.samplers.schedules import edm_sigmas, sd_discrete_sigmas
from support.solver_doubles import PolyEpsModel

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


# --- exactness of the rules ------------------------------------------------------------


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_sigma_rk_exact_for_polynomial_eps(stages):
    """With eps = g(sigma) a polynomial of degree stages - 1 the RK step is exact (the
    tableaus have order = stages); a cubic is not integrated exactly by any of them."""
    s0, s1 = 0.9, 0.0
    x = torch.zeros(1, 1, 2, 2, dtype=F64)
    for degree, exact in ((stages - 1, True), (3, False)):
        coef = np.arange(1.0, degree + 2)
        g = lambda s, c=coef: sum(ck * s**k for k, ck in enumerate(c))  # noqa: E731
        model = PolyEpsModel(g, VE)
        run = SamplerRun(model, x, torch.tensor([s0, 0.5], dtype=F64), method=Method(order=stages))
        plan = rk_plan(SIGMA_STEP_TABLEAUS[stages], s0, s1, run.to_device)  # a step to 0: no end node is used
        d0 = run.denoise(x, run.to_device([s0])[0])
        got = run.rk_step(x, (x - d0) / s0, plan)
        want = sum(ck * (s1 ** (k + 1) - s0 ** (k + 1)) / (k + 1) for k, ck in enumerate(coef))
        err = abs(float(got.reshape(-1)[0]) - want)
        assert (err <= 1e-12) == exact, (degree, err)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_ab_history_exact_for_polynomial_eps(k):
    nodes = [0.5, 0.62, 0.8, 1.1][:k]
    coef = np.linspace(0.3, 1.2, k)
    history = History(k)
    for s in reversed(nodes):  # oldest first
        eps = torch.full((1,), float(sum(c * s**j for j, c in enumerate(coef))), dtype=F64)
        history.push(s, eps, eps)
    got = float(history.ab_step(torch.zeros(1, dtype=F64), nodes[0], 0.0))
    want = -sum(c * nodes[0] ** (j + 1) / (j + 1) for j, c in enumerate(coef))
    assert got == pytest.approx(want, abs=1e-12)
    assert sum(rhoab_coefficients(nodes, nodes[0], 0.0)) == pytest.approx(-nodes[0], abs=1e-14)


def test_tableaus_have_no_end_node():
    for c, _, b in SIGMA_STEP_TABLEAUS.values():
        assert max(c) < 1.0 and sum(b) == pytest.approx(1.0)


# --- where the rules switch on ---------------------------------------------------------------


def _modes(fn_sigmas, mt, order=1, stochastic=False, **kw):
    model = PolyEpsModel(lambda s: s * 0 + 1.0, mt)
    method = Method(order=order, variable=Variable.LAMBDA, stochastic=stochastic)
    modes = SamplerRun(model, torch.zeros(1, 1, dtype=F64), fn_sigmas, method=method, **kw).mode
    assert all(isinstance(m, StepMode) for m in modes)
    return modes


def test_modes_follow_lambda_and_model_type():
    vp = AnalyticDenoiser(kind="vp_discrete").seeds_model_type
    karras = edm_sigmas(20, vp.sigma_min, vp.sigma_max)
    normal = sd_discrete_sigmas(20, vp.sigma_table)
    m = m_karras = _modes(karras, vp)
    lam = [math.log(1.0 / float(s)) for s in karras[:-1]]  # VE: lambda = -log sigma
    # karras has no long step: sigma-steps exactly below sigma = e^-2 (lambda > 2)
    assert m == ["sigma" if lam[i] > 2.0 else "solver" for i in range(19)] + ["denoise"]
    assert "sigma" in m and m[0] == "solver"
    m = _modes(normal, vp)
    assert m[-1] == "denoise" and "sigma" in m and m.index("sigma") > 10  # only the tail
    assert m[-2] == "sigma"  # the long step into sigma_min (h_lambda ~ 2)
    assert _modes(normal, vp, sigma_steps=False) == ["solver"] * 19 + ["denoise"]
    flow = FLOW
    assert _modes(torch.linspace(1, 0, 11, dtype=F64), flow)[-1] == "final_ab"
    # the final extrapolation: the solver's order from a last sigma above lambda =
    # FINAL_AB_LAMBDA, linear (2 values) down to FINAL_LINEAR_LAMBDA, x = D beyond
    def final(last):
        run = SamplerRun(PolyEpsModel(lambda s: s * 0 + 1.0, flow), torch.zeros(1, 1, dtype=F64),
                         torch.tensor([1.0, 0.8, 0.6, last, 0.0], dtype=F64))
        return run.mode[-1], run.final_nodes(3)

    def flow_sigma(lam):
        return 1.0 / (1.0 + math.exp(lam))

    assert final(flow_sigma(FINAL_AB_LAMBDA) * 0.99) == ("final_ab", 3)
    assert final(flow_sigma(FINAL_AB_LAMBDA) * 1.01) == ("final_ab", 2)
    assert final(flow_sigma(FINAL_LINEAR_LAMBDA) * 0.99) == ("final_ab", 2)
    assert final(flow_sigma(FINAL_LINEAR_LAMBDA) * 1.01)[0] == "denoise"
    # head steps (order-3 solvers): on flow models, the steps ending below lambda = -HEAD_LAMBDA
    sig = torch.linspace(1, 0, 41, dtype=F64)
    run = SamplerRun(PolyEpsModel(lambda s: s * 0 + 1.0, flow), torch.zeros(1, 1, dtype=F64), sig,
                     method=Method(order=3, variable=Variable.LAMBDA))
    head = [i for i in range(40) if run.lam[i + 1] < -HEAD_LAMBDA]
    assert head and all(run.mode[i] == "sigma" for i in head) and run.mode[head[-1] + 1] == "solver"
    assert "sigma" not in _modes(sig, flow, order=2)[: head[-1] + 1]  # only order-3 lambda-solvers
    assert _modes(karras, vp, order=3) == m_karras  # VP: alpha never reaches 0
    # solvers whose own steps are in sigma never take a step in sigma
    in_sigma = Method(order=3, variable=Variable.SIGMA)
    assert "sigma" not in SamplerRun(PolyEpsModel(lambda s: s * 0 + 1.0, vp), torch.zeros(1, 1, dtype=F64), normal,
                                     method=in_sigma).mode
    # a stochastic step is never taken in sigma
    m = _modes(normal, vp, stochastic=True)
    assert "sigma" not in m
    m = _modes(normal, vp, stochastic=True, noise_window=(0.0, 0.5))
    assert "sigma" in m


def test_final_step_uses_one_more_node_when_short():
    """flow + normal ends at the model's sigma_min for every n: the final step keeps a
    fixed length, so it extrapolates from k + 1 stored values; simple's does not."""
    short = torch.tensor([1.0, 0.6, 0.3, 0.1, 0.01, 0.0], dtype=F64)
    even = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=F64)
    model = PolyEpsModel(lambda s: s * 0 + 1.0, FLOW)
    x = torch.zeros(1, 1, dtype=F64)
    assert SamplerRun(model, x, short).final_nodes(3) == 4
    assert SamplerRun(model, x, even).final_nodes(3) == 3
    assert SamplerRun(model, x, short, sigma_steps=False).final_nodes(3) == 3


# --- what they buy: error against the converged ODE on host schedules -----------------------


def _mixture():
    g = torch.Generator().manual_seed(0)
    return GaussianMixture(torch.randn((4, 3, 8, 8), generator=g, dtype=F64), [0.15, 0.3, 0.5, 0.25],
                           [0.4, 0.3, 0.2, 0.1])


def _simple(table, n):
    """ComfyUI's "simple": every (len / n)-th entry of the model's own sigma table."""
    ss = len(table) / n
    return torch.tensor([float(table[-(1 + int(k * ss))]) for k in range(n)] + [0.0], dtype=F64)


_REF = {}


def _reference(kind, model, x, sig):
    key = (kind, float(sig[-2]))
    if key not in _REF:
        mt = model.seeds_model_type
        s0 = mt.prepare_sigmas([float(sig[0]), 0.5])[0]
        if kind == "flow":  # the ODE to sigma = 0 (1e-8: below anything measured)
            _REF[key] = reference_solve(model, x, 1e-9, s0, steps=1500)
        else:  # the converged ODE to the last positive sigma, then the final denoise
            y = reference_solve(model, x, float(sig[-2]), s0, steps=1000)
            _REF[key] = model(y, torch.tensor(float(sig[-2]), dtype=F64))
    return _REF[key]


CASES = [  # (sampler, params, model kind, schedule, minimum gain at 80 steps)
    ("seeds_3", dict(eta=0.0), "flow", "simple", 5.0),
    ("seeds_2", dict(eta=0.0, variant="phi_2"), "flow", "simple", 3.0),
    ("er_sde", dict(eta=0.0), "flow", "simple", 2.5),
    ("deis", dict(variant="logrho", order=3), "flow", "simple", 2.5),
    ("deis", dict(variant="rhoab", order=3), "flow", "simple", 5.0),
    ("ipndm", dict(variant="variable", order=3), "flow", "simple", 5.0),
    ("seeds_3", dict(eta=0.0), "vp_discrete", "normal", 3.0),
    ("er_sde", dict(eta=0.0), "vp_discrete", "normal", 1.8),
    ("deis", dict(variant="logrho", order=3), "vp_discrete", "normal", 2.0),
]


@pytest.mark.parametrize("sid, params, kind, schedule, gain", CASES)
def test_sigma_steps_reduce_error_on_host_schedules(sid, params, kind, schedule, gain):
    """Measured at 80 steps against the converged ODE: flow + "simple" (last sigma ~ 3/n,
    first-order final step otherwise) and SD + "normal" (tail steps with h_lambda > 1)."""
    model = AnalyticDenoiser(_mixture(), kind=kind, shift=3.0)
    x = model.prior_sample(4, model.sigma_max, torch.Generator().manual_seed(1))
    table = model.seeds_model_type.sigma_table
    sig = _simple(table, 80) if schedule == "simple" else sd_discrete_sigmas(80, table)
    ref = _reference(kind, model, x, sig)
    fn = SAMPLERS[sid].function
    off = (fn(model, x.clone(), sig, disable=True, sigma_steps=False, **params) - ref).abs().max().item()
    on = (fn(model, x.clone(), sig, disable=True, **params) - ref).abs().max().item()
    assert off / on >= gain, (off, on)


def test_no_qualifying_step_is_bit_identical():
    """A schedule with no step deep in the tail (lambda > 2) and no long tail step runs
    exactly as with sigma_steps=False."""
    model = AnalyticDenoiser(_mixture(), kind="vp_discrete")
    sig = edm_sigmas(20, 0.2, model.sigma_max)  # ends at lambda = 1.6, short steps
    x = model.prior_sample(2, model.sigma_max, torch.Generator().manual_seed(1))
    for sid, p in (("seeds_3", dict(eta=0.0)), ("er_sde", dict(eta=0.0)), ("deis", dict(variant="logrho"))):
        fn = SAMPLERS[sid].function
        assert torch.equal(fn(model, x, sig, disable=True, **p), fn(model, x, sig, disable=True, sigma_steps=False, **p))


# --- the noise window ------------------------------------------------------------------------


@pytest.mark.parametrize("sid", ["seeds_1", "seeds_2", "seeds_3", "er_sde"])
def test_noise_window(sid):
    model = AnalyticDenoiser(_mixture(), kind="vp_discrete")
    sig = edm_sigmas(10, model.sigma_min, model.sigma_max)
    x = model.prior_sample(2, model.sigma_max, torch.Generator().manual_seed(1))
    fn = SAMPLERS[sid].function
    seen = []

    def ns(a, b):
        seen.append(float(a))
        return torch.randn(x.shape, dtype=F64, generator=g)

    g = torch.Generator().manual_seed(0)
    fn(model, x, sig, disable=True, eta=1.0, noise_sampler=ns, noise_start=0.2, noise_end=0.6)
    steps = {i for i in range(10) for a in seen if sig[i + 1] < a <= sig[i]}
    assert steps and all(0.2 <= i / 10 < 0.6 for i in steps)
    # an empty window is the deterministic solver
    empty = fn(model, x, sig, disable=True, eta=1.0, noise_start=0.5, noise_end=0.5, sigma_steps=False)
    ode = fn(model, x, sig, disable=True, eta=0.0, sigma_steps=False)
    assert (empty - ode).abs().max().item() <= 1e-12
    assert SAMPLERS[sid].is_stochastic(noise_start=0.5, noise_end=0.5) is False


# --- orders on the hosts' schedules ----------------------------------------------------------

ORDER_NS = (80, 160, 320)
ORDER_ROWS = [(case, label) for case in CASES_ORDER for label in SOLVERS_ORDER]


@pytest.mark.parametrize("case, label", ORDER_ROWS)
def test_order_on_host_schedules(case, label):
    """The order seen over 80 / 160 / 320 steps against the converged ODE (at sigma = 0 on
    flow models, at the final denoise on SD), with the default steps in sigma, is at least
    the theory - 0.3; the rows that do not reach it (docs/sigma_steps.md explains each) are
    held to their documented bound, so they cannot get worse unnoticed."""
    kind, schedule, shift = CASES_ORDER[case]
    sid, params, theory = SOLVERS_ORDER[label]
    errs = order_errors(sid, params, kind, schedule, shift, ORDER_NS)
    got = order_slope(ORDER_NS, errs)
    if (case, label) in ORDER_EXCEPTIONS:
        bound = ORDER_EXCEPTIONS[(case, label)]
        if bound is None:  # documented to stall: only finite and below 1e-3
            assert max(errs) < 1e-3, errs
            return
        assert bound <= got < theory - 0.3, (got, errs)  # if it reaches the theory, update the doc
    else:
        assert got >= theory - 0.3, (got, errs)
