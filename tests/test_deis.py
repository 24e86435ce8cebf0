"""DEIS (tAB / rhoAB / log-rho / rhoRK): time maps, coefficients, agreement with diffusers,
the sampler contract, and the measured convergence orders of every deterministic DEIS
and iPNDM variant on the exact Gaussian-mixture model (iPNDM's convergence cases live
here so both families share the reference solves).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import integrate

from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture
from seeds_samplers.samplers.deis import DEIS_VARIANTS, logrho_coefficients, sample_deis, tab_coefficients
from seeds_samplers.samplers.multistep import multistep_orders
from seeds_samplers.samplers.runge_kutta import DEIS_RK_TABLEAUS, SIGMA_STEP_TABLEAUS
from seeds_samplers.samplers.ipndm import sample_ipndm
from seeds_samplers.samplers.lagrange import rhoab_coefficients
from seeds_samplers.samplers.model_types import VE, ModelType
from seeds_samplers.samplers.registry import SAMPLERS
from seeds_samplers.samplers.schedules import edm_sigmas, fit_vp_betas, sd_sigma_table
from seeds_samplers.samplers.vp_time import (
    discrete_vp_time,
    fitted_vp_time,
    flow_time,
    log_sigma_time,
    model_time,
    sigma_time,
)


from support.solver_doubles import F64, Counting, PolyEpsModel, polynomial, record



# --- time maps -------------------------------------------------------------------------


def test_discrete_vp_time_is_the_table_index():
    table = sd_sigma_table()
    tau = discrete_vp_time(table)
    k = np.array([0, 1, 17, 500, 998, 999])
    assert np.allclose(tau(table.numpy()[k]), k, atol=1e-9)
    sweep = np.concatenate([[0.0], np.geomspace(1e-3, 100.0, 2000)])
    t = tau(sweep)
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)  # extrapolated beyond the table
    # abar is linear in t between entries (DEIS's DiscreteVPSDE)
    s = table.numpy()
    abar = 0.5 * (1 / (1 + s[10] ** 2) + 1 / (1 + s[11] ** 2))
    assert abs(tau(np.array([math.sqrt(1 / abar - 1)]))[0] - 10.5) < 1e-9


@pytest.mark.parametrize("lo, hi", [(0.002, 80.0), (0.0292, 14.61), (0.01, 1.0)])
def test_fitted_vp_time_inverts_the_fitted_sde(lo, hi):
    tau = fitted_vp_time(lo, hi)
    beta_d, beta_min = fit_vp_betas(lo, hi)
    assert tau(np.array([lo]))[0] == pytest.approx(1e-3, rel=1e-9)
    assert tau(np.array([hi]))[0] == pytest.approx(1.0, rel=1e-12)
    s = np.geomspace(lo, hi, 50)
    t = tau(s)
    assert np.allclose(np.sqrt(np.expm1(0.5 * beta_d * t * t + beta_min * t)), s, rtol=1e-10)
    assert np.isfinite(tau(np.array([0.0]))[0]) and np.all(np.diff(tau(np.concatenate([[0.0], s]))) > 0)


def test_flow_time_is_the_models_own_time(mix):
    for shift in (1.0, 3.0):
        mt = AnalyticDenoiser(mix, kind="flow", shift=shift).seeds_model_type
        tau = model_time(mt, [1.0, 0.0])
        assert tau.name.startswith("flow_shift")
        table = mt.sigma_table.numpy()
        assert np.allclose(tau(table), np.arange(1, len(table) + 1) / len(table), atol=1e-12)
        # a float32 table (as ComfyUI stores it) is recognised too
        assert flow_time(mt.sigma_table.float()).name.startswith("flow_shift")
    other = np.linspace(0.001, 1.0, 400) ** 2  # not a shift table: index, linear in sigma
    tau = flow_time(other)
    assert tau.name == "flow_table" and np.allclose(tau(other), np.arange(400))
    assert model_time(ModelType("flow"), [1.0, 0.0]).name == "sigma"


def test_tab_time_map_comes_from_the_model(mix):
    sd = AnalyticDenoiser(mix, kind="vp_discrete").seeds_model_type
    edm = AnalyticDenoiser(mix, kind="edm").seeds_model_type
    assert model_time(sd, [14.0, 0.0]).name == "discrete_vp"
    # continuous models: the VP-SDE fitted to *their* range (EDM gives a slightly negative beta_min)
    beta_d, beta_min = fit_vp_betas(0.002, 80.0)
    assert beta_min < 0 and model_time(edm, [80.0, 0.0]).name == fitted_vp_time(0.002, 80.0).name
    other = ModelType("ve", 0.03, 20.0)
    assert model_time(other, [20.0, 0.0]).name == fitted_vp_time(0.03, 20.0).name
    assert model_time(other, [20.0, 0.0]).name != model_time(edm, [80.0, 0.0]).name
    # unknown range: the schedule's own positive range
    assert model_time(ModelType("ve"), [5.0, 1.0, 0.1, 0.0]).name == fitted_vp_time(0.1, 5.0).name
    # explicit override on a discrete model
    assert model_time(sd, [14.0, 0.0], "vp_fit").name == fitted_vp_time(sd.sigma_min, sd.sigma_max).name
    with pytest.raises(ValueError):
        model_time(sd, [14.0, 0.0], "nope")


# --- coefficients ----------------------------------------------------------------------


def _integrate_pieces(f, a, b, breakpoints):
    """int_a^b f by adaptive quadrature (vector-valued f), split at the given kinks."""
    lo, hi = min(a, b), max(a, b)
    inner = breakpoints[(breakpoints > lo) & (breakpoints < hi)]
    edges = np.concatenate([[lo], inner, [hi]])
    total = sum(integrate.quad_vec(f, p, q, epsabs=0.0, epsrel=1e-13)[0] for p, q in zip(edges[:-1], edges[1:]))
    return total if b > a else -total


def _direct_quadrature(tau, nodes, s0, s1):
    """int_{s0}^{s1} l_j(tau(sigma)) dsigma by adaptive quadrature between the map's kinks
    (independent of the Gauss-Legendre panels under test)."""
    t_nodes = tau(np.array(nodes))

    def basis(s):
        t = tau(np.array([s]))[0]
        return np.array([np.prod([(t - tm) / (tj - tm) for m, tm in enumerate(t_nodes) if m != j])
                         for j, tj in enumerate(t_nodes)])

    return list(_integrate_pieces(basis, s0, s1, tau.breakpoints))


TAB_MAPS = {
    "discrete_sd": lambda mix: discrete_vp_time(sd_sigma_table()),
    "fitted_edm": lambda mix: fitted_vp_time(0.002, 80.0),
    "flow_shift3": lambda mix: flow_time(AnalyticDenoiser(mix, kind="flow", shift=3.0).seeds_model_type.sigma_table),
}


@pytest.mark.parametrize("name", list(TAB_MAPS))
def test_tab_coefficients_match_direct_quadrature(name, mix):
    tau = TAB_MAPS[name](mix)
    top = 0.999 if name.startswith("flow") else 12.0
    sig = edm_sigmas(8, 0.03, top, 7.0)[:-1].tolist()
    checked = 0
    for i in range(1, len(sig) - 1):
        for q in sorted({2, min(4, i + 1)}):
            nodes = [sig[i - j] for j in range(q)]
            ours = tab_coefficients(tau, nodes, sig[i], sig[i + 1])
            ref = _direct_quadrature(tau, nodes, sig[i], sig[i + 1])
            scale = sum(abs(c) for c in ref)
            assert max(abs(a - b) for a, b in zip(ours, ref)) <= 1e-11 * scale, (i, q, ours, ref)
            checked += 1
    assert checked >= 8


def _node_sets():
    rng = np.random.default_rng(1)
    for _ in range(25):
        q = int(rng.integers(1, 5))
        s0 = float(np.exp(rng.uniform(-3, 2.5)))
        ratios = np.exp(rng.uniform(0.05, 0.8, size=q - 1))
        nodes = [s0] + list(s0 * np.cumprod(ratios))
        s1 = s0 * float(np.exp(-rng.uniform(0.02, 1.5)))
        yield nodes, s0, s1


def test_coefficients_sum_to_the_step():
    taus = [discrete_vp_time(sd_sigma_table()), fitted_vp_time(0.002, 80.0), sigma_time(), log_sigma_time()]
    for nodes, s0, s1 in _node_sets():
        sets = [rhoab_coefficients(nodes, s0, s1), logrho_coefficients(nodes, s0, s1)]
        sets += [tab_coefficients(t, nodes, s0, s1) for t in taus]
        for c in sets:
            assert abs(sum(c) - (s1 - s0)) <= 1e-13 * sum(abs(v) for v in c)
        # a step to sigma = 0 (closed forms: the limit, no 0 * log 0)
        for c in (rhoab_coefficients(nodes, s0, 0.0), logrho_coefficients(nodes, s0, 0.0)):
            assert all(math.isfinite(v) for v in c)
            assert abs(sum(c) + s0) <= 1e-13 * sum(abs(v) for v in c)


def test_closed_forms_equal_quadrature_in_their_variable():
    for nodes, s0, s1 in _node_sets():
        for closed, tau in ((rhoab_coefficients, sigma_time()), (logrho_coefficients, log_sigma_time())):
            a, b = closed(nodes, s0, s1), tab_coefficients(tau, nodes, s0, s1)
            assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-12 * sum(abs(v) for v in a)
        # log-rho to sigma = 0 is the limit of steps to ever smaller sigma
        near = logrho_coefficients(nodes, s0, s0 * 1e-30)
        zero = logrho_coefficients(nodes, s0, 0.0)
        assert max(abs(x - y) for x, y in zip(near, zero)) <= 1e-12 * sum(abs(v) for v in zero)


def test_log_rho_two_and_three_node_antiderivatives():
    # docs/algorithms.md, DEIS: int (L-b)/(a-b) dsigma = sigma (L - b - 1)/(a - b), and the 3-node form
    def two(s, a, b):
        L = math.log(s)
        return s * (L - b - 1) / (a - b)

    def three(s, a, b, c):
        L = math.log(s)
        return s * (L * L - (b + c + 2) * L + (b + c + 2) + b * c) / ((a - b) * (a - c))

    s0, s1, s2, t = 2.0, 2.6, 3.5, 1.3
    la, lb, lc = math.log(s0), math.log(s1), math.log(s2)
    c2 = logrho_coefficients([s0, s1], s0, t)
    assert c2[0] == pytest.approx(two(t, la, lb) - two(s0, la, lb), rel=1e-13)
    assert c2[1] == pytest.approx(two(t, lb, la) - two(s0, lb, la), rel=1e-13)
    c3 = logrho_coefficients([s0, s1, s2], s0, t)
    for j, (a, b, c) in enumerate([(la, lb, lc), (lb, la, lc), (lc, la, lb)]):
        assert c3[j] == pytest.approx(three(t, a, b, c) - three(s0, a, b, c), rel=1e-12)


@pytest.mark.parametrize("tableaus", [DEIS_RK_TABLEAUS, SIGMA_STEP_TABLEAUS], ids=["rhoRK", "sigma_steps"])
def test_rk_tableaus_satisfy_their_order_conditions(tableaus):
    for order, (c, A, b) in tableaus.items():
        c, b = [Fraction(v).limit_denominator(100) for v in c], [Fraction(v).limit_denominator(100) for v in b]
        A = [[Fraction(v).limit_denominator(100) for v in row] for row in A]
        A = [row + [Fraction(0)] * (len(c) - len(row)) for row in A]
        assert len(c) == order  # explicit, as many stages as the order (so calls = order)
        assert all(sum(row) == ci for row, ci in zip(A, c))
        Ac = [sum(a * cj for a, cj in zip(row, c)) for row in A]
        conds = [(sum(b), 1)]
        if order >= 2:
            conds += [(sum(bi * ci for bi, ci in zip(b, c)), Fraction(1, 2))]
        if order >= 3:
            conds += [(sum(bi * ci**2 for bi, ci in zip(b, c)), Fraction(1, 3)),
                      (sum(bi * v for bi, v in zip(b, Ac)), Fraction(1, 6))]
        if order >= 4:
            Ac2 = [sum(a * cj**2 for a, cj in zip(row, c)) for row in A]
            AAc = [sum(a * v for a, v in zip(row, Ac)) for row in A]
            conds += [(sum(bi * ci**3 for bi, ci in zip(b, c)), Fraction(1, 4)),
                      (sum(bi * ci * v for bi, ci, v in zip(b, c, Ac)), Fraction(1, 8)),
                      (sum(bi * v for bi, v in zip(b, Ac2)), Fraction(1, 12)),
                      (sum(bi * v for bi, v in zip(b, AAc)), Fraction(1, 24))]
        for got, want in conds:
            assert got == want, (order, got, want)


# --- the sampler is exact where its interpolant is -------------------------------------


def _poly_eps_case(variant: str, map_name: str, mix: GaussianMixture):
    """(model, variable tau, schedule) for a model whose eps is a cubic in the variant's tau."""
    if map_name == "discrete":
        table = sd_sigma_table()
        mt = ModelType("ve", float(table[0]), float(table[-1]), table)
        sig = edm_sigmas(12, 0.05, 14.0, 7.0)[:-1]
    elif map_name == "fitted":
        mt = ModelType("ve", 0.002, 80.0)
        sig = edm_sigmas(12, 0.05, 60.0, 7.0)[:-1]
    else:
        mt = AnalyticDenoiser(mix, kind="flow", shift=3.0).seeds_model_type
        sig = torch.linspace(0.95, 0.05, 12, dtype=F64)
    tau = {"tab": model_time(mt, sig.tolist()), "rhoab": sigma_time(), "logrho": log_sigma_time()}[variant]
    return mt, tau, sig


@pytest.mark.parametrize("variant, map_name", [
    ("tab", "discrete"), ("tab", "fitted"), ("tab", "flow"),
    ("rhoab", "discrete"), ("logrho", "discrete"), ("logrho", "flow"),
])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_multistep_steps_are_exact_for_eps_polynomial_in_tau(variant, map_name, order, mix):
    mt, tau, sig = _poly_eps_case(variant, map_name, mix)
    t0 = float(tau(np.array([float(sig[0])]))[0])
    t1 = float(tau(np.array([float(sig[-1])]))[0])
    coeffs = np.random.default_rng(order).normal(size=order)

    def g(s):  # polynomial of degree order-1 in the normalised time
        u = (tau(np.asarray(s, dtype=np.float64)) - t1) / (t0 - t1)
        return np.polynomial.polynomial.polyval(u, coeffs)

    model = PolyEpsModel(g, mt)
    x = torch.zeros(2, 1, 2, 2, dtype=F64)
    # the variant's own steps (no steps in sigma): exactness is a property of its polynomial
    xs, _ = record(sample_deis, model, x, sig, variant=variant, order=order, lower_order_final=False,
                   sigma_steps=False, corrected_start=False)
    s = sig.tolist()
    for i in range(order - 1, len(s) - 1):
        exact = float(_integrate_pieces(lambda v: g(np.array([v])), s[i], s[i + 1], tau.breakpoints)[0])
        got = float((xs[i + 1] - xs[i]).reshape(-1)[0])
        assert got == pytest.approx(exact, rel=1e-9, abs=1e-11 * abs(s[i + 1] - s[i])), (i, got, exact)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_rk_steps_are_exact_for_eps_polynomial_in_sigma(order):
    # quadrature view: Euler/Heun exact to degree order-1, Kutta's rule and RK4 (Simpson) to 3
    degree = {1: 0, 2: 1, 3: 3, 4: 3}[order]
    coeffs = np.random.default_rng(5).normal(size=degree + 1)
    g = lambda s: np.polynomial.polynomial.polyval(s, coeffs)  # noqa: E731
    model = PolyEpsModel(g, ModelType("ve"))
    sig = edm_sigmas(6, 0.1, 5.0, 7.0)[:-1]
    xs, _ = record(sample_deis, model, torch.zeros(1, 3, dtype=F64), sig, variant="rhork", order=order)
    P = np.polynomial.polynomial.polyint(coeffs)
    s = sig.tolist()
    for i in range(len(s) - 1):
        exact = np.polynomial.polynomial.polyval(s[i + 1], P) - np.polynomial.polynomial.polyval(s[i], P)
        assert float((xs[i + 1] - xs[i])[0, 0]) == pytest.approx(exact, rel=1e-12, abs=1e-13)


# --- diffusers' DEISMultistepScheduler ---------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps, lower_order_final", [(10, True), (10, False), (20, True)])
def test_logrho_matches_diffusers(order, steps, lower_order_final, mix):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DEISMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        solver_order=order, lower_order_final=lower_order_final,
    )
    sched.set_timesteps(steps)
    # diffusers computes its log-rho weights from float32 sigmas, whose cancellation alone
    # costs ~1e-5 at order 3; in float64 both implementations agree to round-off.
    sched.sigmas = sched.sigmas.to(F64)
    sigmas = sched.sigmas.clone()  # k-diffusion sigmas sqrt((1 - abar_t) / abar_t); last = sigma(t=0) > 0
    model = AnalyticDenoiser(mix, kind="vp_discrete")
    x = model.prior_sample(4, float(sigmas[0]), torch.Generator().manual_seed(3))

    ref = []  # diffusers on the VP latent x_vp = x / sqrt(1 + sigma^2), eps-prediction
    x_vp = x / math.sqrt(1 + float(sigmas[0]) ** 2)
    for i, t in enumerate(sched.timesteps):
        s = float(sigmas[i])
        x_ve = x_vp * math.sqrt(1 + s * s)
        ref.append(x_ve)
        eps = (x_ve - model(x_ve, torch.tensor(s, dtype=F64))) / s
        x_vp = sched.step(eps, t, x_vp).prev_sample
    ref.append(x_vp * math.sqrt(1 + float(sigmas[-1]) ** 2))

    ours, _ = record(sample_deis, model, x, sigmas, variant="logrho", order=order, lower_order_final=lower_order_final,
                     sigma_steps=False, corrected_start=False)  # diffusers' steps and warm-up
    assert len(ours) == len(ref) == steps + 1
    rel = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, ref))
    assert rel <= 1e-10, rel


# --- the sampler contract ----------------------------------------------------------------


ALL_DEIS = [(v, o) for v in DEIS_VARIANTS for o in (1, 2, 3, 4)]


def _sd_setup(mix, n=8, batch=2):
    model = Counting(AnalyticDenoiser(mix, kind="vp_discrete"))
    sig = edm_sigmas(n, model.model.sigma_min, model.model.sigma_max, 7.0)
    x = model.model.prior_sample(batch, float(sig[0]), torch.Generator().manual_seed(2))
    return model, x, sig


@pytest.mark.parametrize("variant, order", ALL_DEIS)
def test_final_step_denoises_and_counts_calls(variant, order, mix):
    model, x, sig = _sd_setup(mix)
    calls = []
    out = sample_deis(model, x, sig, variant=variant, order=order, disable=True, callback=calls.append)
    n = len(sig) - 1
    assert [c["i"] for c in calls] == list(range(n))
    assert set(calls[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    assert torch.equal(out, calls[-1]["denoised"])  # the step to sigma = 0 returns D
    per_step = order if variant == "rhork" else 1
    assert model.calls == per_step * (n - 1) + 1 == SAMPLERS["deis"].calls(variant=variant, order=order) * (n - 1) + 1
    assert out.dtype == x.dtype and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("variant", DEIS_VARIANTS)
def test_stop_at_sigma_min_and_schedules_without_zero(variant, mix):
    model, x, sig = _sd_setup(mix)
    a = sample_deis(model, x, sig, variant=variant, stop_at_sigma_min=True, disable=True)
    calls_a = model.calls
    b = sample_deis(model, x, sig[:-1], variant=variant, disable=True)
    assert torch.equal(a, b)  # the state at the last positive sigma, not denoised
    assert calls_a == model.calls - calls_a
    full = sample_deis(model, x, sig, variant=variant, disable=True)
    assert not torch.allclose(full, a)


def test_warm_up_and_lower_order_final_schedule():
    assert multistep_orders(10, 3, True) == [1, 2, 3, 3, 3, 3, 3, 3, 2, 1]
    assert multistep_orders(10, 4, False) == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    assert multistep_orders(15, 3, True) == [1, 2] + [3] * 13  # only below 15 steps
    assert multistep_orders(1, 3, True) == [1]
    assert multistep_orders(2, 1, True) == [1, 1]


@pytest.mark.parametrize("variant", ["tab", "rhoab", "logrho"])
def test_first_and_lower_order_final_steps_are_ddim(variant, mix):
    model, x, sig = _sd_setup(mix, n=9)
    sig = sig[:-1]  # end at sigma_min so the last step is a real multistep step
    for lof in (True, False):
        xs, ds = record(sample_deis, model, x, sig, variant=variant, order=3, lower_order_final=lof)
        s = sig.tolist()
        ddim = [xs[i] + (xs[i] - ds[i]) / s[i] * (s[i + 1] - s[i]) for i in range(len(s) - 1)]
        assert torch.allclose(xs[1], ddim[0], rtol=1e-12, atol=1e-12)  # warm-up
        assert torch.allclose(xs[-1], ddim[-1], rtol=1e-12, atol=1e-12) == lof


@pytest.mark.parametrize("variant", DEIS_VARIANTS)
def test_flow_model_with_first_sigma_one(variant, mix):
    inner = AnalyticDenoiser(mix, kind="flow", shift=3.0)
    model = Counting(inner)
    sig = torch.linspace(1.0, 0.0, 11, dtype=F64)
    x = inner.prior_sample(3, 1.0, torch.Generator().manual_seed(4))
    out = sample_deis(model, x, sig, variant=variant, order=3, disable=True)
    assert model.sigmas[0] == inner.seeds_model_type.flow_first_sigma  # ComfyUI's offset
    assert bool(torch.isfinite(out).all())
    # and it is the solution: a fine RK4 solve of the same problem agrees
    fine = sample_deis(inner, x, torch.linspace(1.0, 0.0, 201, dtype=F64), variant="rhork", order=4, disable=True)
    assert float((out - fine).abs().max()) < 0.05


def test_half_precision_latents(mix):
    model, x, sig = _sd_setup(mix)
    out16 = sample_deis(model, x.half(), sig, disable=True)
    out32 = sample_deis(model, x.float(), sig, disable=True)
    assert out16.dtype == torch.float16 and bool(torch.isfinite(out16).all())
    assert torch.allclose(out16.float(), out32, atol=2e-2)


def test_progress_bar_runs(mix):
    model, x, sig = _sd_setup(mix, n=3)
    sample_deis(model, x, sig, disable=False)


def test_registry_entry(mix):
    spec = SAMPLERS["deis"]
    assert spec.function is sample_deis and spec.family == "deis" and spec.host_name == "ss_deis"
    assert spec.calls() == 1 and spec.calls(variant="rhork", order=4) == 4 and spec.calls(variant="tab", order=4) == 1
    assert not spec.is_stochastic(variant="rhork")
    with pytest.raises(ValueError):
        spec.resolve(order=5)
    # the defaults run
    model, x, sig = _sd_setup(mix)
    assert bool(torch.isfinite(spec.function(model, x, sig, disable=True, **spec.defaults())).all())


# --- measured convergence orders (DEIS and iPNDM) ------------------------------------------
#
# Error at a fixed end sigma against a DOP853 float64 solve (rtol 1e-13) of the same ODE.
# The schedules start with steps O(1/n^2) (quadratic in u = k/n at the start): the
# multistep methods warm up with lower orders, and an Euler first step of size O(1/n)
# would otherwise cost O(1/n^2) globally whatever the order. iPNDM's constant-step weights
# are off by O(step ratio - 1) = O(1/n) on such a non-uniform grid, so its global order
# is 2 for orders >= 2 (the variable-step variant keeps the full order). The step counts
# (fewer for the single-step RK methods) are where every variant is in its asymptotic regime and the error is far above both
# round-off and the ~1e-8 floor of tAB's piecewise-linear discrete time map.

CONVERGENCE_CASES = (
    [("deis", v, o, o) for v in ("tab", "rhoab", "logrho") for o in (2, 3, 4)]
    + [("deis", "rhork", o, o) for o in (1, 2, 3, 4)]
    + [("ipndm", "variable", o, o) for o in (1, 2, 3, 4)]
    + [("ipndm", "fixed", o, min(o, 2)) for o in (1, 2, 3, 4)]
)


def _reference(model, x, s0, s1, log_sigma):
    """x(s1) from x(s0) on dx/dsigma = (x - D) / sigma (in log sigma for VE: dx/dlog s = x - D)."""
    shape = x.shape

    def f(t, y):
        s = math.exp(t) if log_sigma else t
        xx = torch.from_numpy(y).reshape(shape)
        e = xx - model(xx, torch.tensor(s, dtype=F64))
        return (e if log_sigma else e / s).reshape(-1).numpy()

    span = (math.log(s0), math.log(s1)) if log_sigma else (s0, s1)
    sol = integrate.solve_ivp(f, span, x.reshape(-1).numpy(), method="DOP853", rtol=1e-13, atol=1e-13)
    assert sol.success
    return torch.from_numpy(sol.y[:, -1]).reshape(shape)


@pytest.fixture(scope="module")
def convergence_problems(mix):
    gen = torch.Generator().manual_seed(1)
    out = {}

    # VE: SD-like discrete model (tAB uses its abar table), log sigma quadratic in u
    ve = AnalyticDenoiser(mix, kind="vp_discrete")
    top, end = ve.sigma_max, 1.0
    x = ve.prior_sample(8, top, gen)

    def ve_sched(n):
        u = torch.linspace(0, 1, n + 1, dtype=F64)
        return torch.exp(math.log(top) + (math.log(end) - math.log(top)) * u**2)

    out["ve"] = (ve, x, _reference(ve, x, top, end, True), ve_sched, (64, 128, 256), (32, 64, 128))

    # EDM: continuous VE model (tAB uses the VP-SDE fitted to 0.002..80)
    edm = AnalyticDenoiser(mix, kind="edm")
    x = edm.prior_sample(8, 80.0, gen)

    def edm_sched(n):
        u = torch.linspace(0, 1, n + 1, dtype=F64)
        return torch.exp(math.log(80.0) + (math.log(end) - math.log(80.0)) * u**2)

    out["edm"] = (edm, x, _reference(edm, x, 80.0, end, True), edm_sched, (128, 256, 512), None)

    # Flow (shift 3): starts at sigma = 1, which the run offsets to flow_first_sigma; the
    # grid is quadratic from that offset point so it stays smooth.
    flow = AnalyticDenoiser(mix, kind="flow", shift=3.0)
    s0, fend = flow.seeds_model_type.flow_first_sigma, 0.1
    x = flow.prior_sample(8, 1.0, gen)

    def flow_sched(n):
        s = s0 - (s0 - fend) * torch.linspace(0, 1, n + 1, dtype=F64) ** 2
        s[0] = 1.0
        return s

    out["flow"] = (flow, x, _reference(flow, x, s0, fend, False), flow_sched, (128, 256, 512), (32, 64, 128))
    return out


def _measured_order(problem, family, variant, order):
    model, x, ref, sched, ns, ns_rk = problem
    ns = ns_rk if variant == "rhork" else ns  # single-step: asymptotic sooner, round-off later
    errors = []
    for n in ns:
        if family == "deis":
            y = sample_deis(model, x, sched(n), variant=variant, order=order, lower_order_final=False, disable=True)
        else:
            y = sample_ipndm(model, x, sched(n), variant=variant, order=order, disable=True)
        errors.append(float((y - ref).pow(2).mean().sqrt()))
    assert min(errors) > 1e-10  # far above round-off (the reference is good to ~1e-13)
    return -float(np.polyfit(np.log(ns), np.log(errors), 1)[0]), errors


@pytest.mark.parametrize("param", ["ve", "flow"])
@pytest.mark.parametrize("family, variant, order, theory", CONVERGENCE_CASES)
def test_convergence_order(convergence_problems, param, family, variant, order, theory):
    measured, errors = _measured_order(convergence_problems[param], family, variant, order)
    assert abs(measured - theory) <= 0.3, (measured, errors)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_convergence_order_tab_fitted_vp_map(convergence_problems, order):
    measured, errors = _measured_order(convergence_problems["edm"], "deis", "tab", order)
    assert abs(measured - order) <= 0.3, (measured, errors)


@pytest.mark.parametrize("variant", ["rhoab", "logrho", "tab"])
def test_corrected_start_makes_the_first_step_exact_for_linear_eps(variant):
    """With eps linear in the solver's variable, every step of an order-3 multistep run is
    exact once the Euler first step is corrected (two-node rule); with the papers' warm-up
    the first step is not, and its error stays in the result (the order-2 cap)."""
    mt = VE
    sig = edm_sigmas(8, 0.5, 20.0)
    sig = sig[:-1]  # end above 0: every step is a multistep step
    s0, s_end = float(sig[0]), float(sig[-1])
    if variant == "rhoab":
        g, exact = polynomial([0.3, 0.7]), 0.3 * (s_end - s0) + 0.35 * (s_end**2 - s0**2)
    else:  # linear in log sigma (log-rho) or in the model's time (tab): integrate numerically
        tau = model_time(mt, [float(v) for v in sig], "auto") if variant == "tab" else None

        def g(s, tau=tau):
            u = np.log(np.asarray(s, dtype=np.float64)) if tau is None else tau(np.asarray(s, dtype=np.float64))
            return 0.3 + 0.7 * u

        grid = np.linspace(s_end, s0, 200001)
        vals = g(grid)
        exact = -float(np.sum((vals[1:] + vals[:-1]) / 2 * np.diff(grid)))
    model = PolyEpsModel(g, mt)
    x = torch.zeros(1, 1, dtype=F64)
    on = float(sample_deis(model, x, sig, variant=variant, order=3, lower_order_final=False, disable=True))
    off = float(sample_deis(model, x, sig, variant=variant, order=3, lower_order_final=False, disable=True,
                            corrected_start=False))
    assert on == pytest.approx(exact, rel=1e-7, abs=1e-9)
    assert abs(off - exact) > 1e-4
