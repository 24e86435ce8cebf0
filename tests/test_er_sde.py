"""ER-SDE-Solver (docs/algorithms.md (ER-SDE)): noise-scale functions, the S and S' integrals, the
official Riemann rule, exactness for polynomial denoisers, and agreement with independent
reimplementations of the update (the official one and the third-order default)."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import torch

from seeds_samplers.samplers.er_sde import NOISE_SCALE_FUNCTIONS, _Phi, noise_scale_function, sample_er_sde
from seeds_samplers.samplers.model_types import FLOW, VE
from seeds_samplers.samplers.schedules import edm_sigmas
from support.solver_doubles import no_noise

pytestmark = pytest.mark.usefixtures("one_thread")

# The paper's table (docs/algorithms.md, ER-SDE), restated independently in mpmath; eta_f is the
# func_type-3 parameter (official default 0).
PHI_MP = {
    "ode": lambda s: s,
    "original_sde": lambda s: s**2,
    "sde_1": lambda s: s * (mp.exp(s ** (0 - 1) / (0 - 1)) + 10),
    "sde_2": lambda s: s**1.5,
    "sde_3": lambda s: s**2.5,
    "sde_4": lambda s: s**0.9 * mp.log10(1 + 100 * s**1.5),
    "sde_5": lambda s: s * (mp.exp(s**0.3) + 10),
}
ETAS = [0.0, 0.5, 1.0, 2.0]
INTERVALS = [(0.03, 0.05), (0.4, 1.3), (2.0, 14.6), (14.0, 80.0), (0.002, 80.0)]


def phi_eta_mp(name, eta):
    base = PHI_MP[name]
    return lambda s: s ** (1 - eta) * base(s) ** eta


def test_all_seven_functions_are_offered():
    assert set(NOISE_SCALE_FUNCTIONS) == set(PHI_MP)


@pytest.mark.parametrize("name", sorted(PHI_MP))
@pytest.mark.parametrize("eta", ETAS)
def test_noise_scale_function_values(name, eta):
    phi = noise_scale_function(name, eta)
    ref = phi_eta_mp(name, eta)
    for s in (0.002, 0.05, 0.7, 1.0, 3.3, 14.6, 80.0):
        assert float(phi(s)) == pytest.approx(float(ref(mp.mpf(s))), rel=1e-12)
        # valid noise-scale function: phi(s)/s non-decreasing, so r <= s'/s
        assert float(phi(s * 1.01)) / (s * 1.01) >= float(phi(s)) / s * (1 - 1e-12)


# the integrands of each expansion's two integrals over [s_{i+1}, s_i] (s_i = hi), and how the
# solver computes them
INTEGRANDS = {
    "sigma": (lambda s, hi, phi: 1 / phi, lambda s, hi, phi: (s - hi) / phi,
              lambda f, lo, hi: f.integrals(lo, hi)),
    "lambda": (lambda s, hi, phi: 1 / (s * phi), lambda s, hi, phi: mp.log(hi / s) / (s * phi),
               lambda f, lo, hi: tuple(float(v[0]) for v in f.lambda_integrals_many([lo], [hi]))),
}


@pytest.mark.parametrize("name", sorted(PHI_MP))
@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize("expansion", sorted(INTEGRANDS))
def test_integrals_match_high_precision_quadrature(name, eta, expansion):
    """sigma: S = int ds / phi and S' = int (s - s_i) / phi ds; lambda: T = int ds / (s phi) and
    T' = int log(s_i / s) / (s phi) ds; over [s_{i+1}, s_i]."""
    mp.mp.dps = 30
    ref = phi_eta_mp(name, eta)
    phi = _Phi(name, eta, "gauss")
    first, second, solver = INTEGRANDS[expansion]
    for lo, hi in INTERVALS:
        pts = [mp.mpf(lo)] + [mp.mpf(v) for v in np.geomspace(lo, hi, 12)[1:-1]] + [mp.mpf(hi)]
        want = (mp.quad(lambda s: first(s, hi, ref(s)), pts), mp.quad(lambda s: second(s, hi, ref(s)), pts))
        got = solver(phi, lo, hi)
        assert got[0] == pytest.approx(float(want[0]), rel=1e-11), (lo, hi)
        assert got[1] == pytest.approx(float(want[1]), rel=1e-10), (lo, hi)
        assert (got[1] < 0) == (expansion == "sigma")


def _left_riemann(f, lo, hi):
    """The official rule: 100 nodes lo + k (hi - lo) / 100, k = 0..99, equal weights."""
    mp.mp.dps = 30
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    d = (hi - lo) / 100
    return sum(f(lo + k * d) for k in range(100)) * d


@pytest.mark.parametrize("name", sorted(PHI_MP))
@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_riemann100_is_the_official_left_riemann_sum(name, eta):
    ref = phi_eta_mp(name, eta)
    phi = _Phi(name, eta, "riemann100")
    for lo, hi in INTERVALS[:4]:
        S = _left_riemann(lambda s: 1 / ref(s), lo, hi)
        S1 = _left_riemann(lambda s: (s - hi) / ref(s), lo, hi)
        got_S, got_S1 = phi.integrals(lo, hi)
        assert got_S == pytest.approx(float(S), rel=1e-12)
        assert got_S1 == pytest.approx(float(S1), rel=1e-11)
    # and it is a different rule from the exact integral (about 0.2 % off on a typical step)
    exact_S, _ = _Phi(name, eta, "gauss").integrals(2.0, 14.6)
    assert abs(phi.integrals(2.0, 14.6)[0] / exact_S - 1) > 1e-4


def test_order1_ode_equals_k_diffusion_euler(analytic):
    from k_diffusion import sampling as ks

    model = analytic("edm")
    sigmas = edm_sigmas(15, 0.002, 80.0)
    x = model.prior_sample(4, 80.0, torch.Generator().manual_seed(0))
    ours = sample_er_sde(model, x, sigmas, order=1, noise_scale_function="ode", disable=True,
                         sigma_steps=False)  # the paper's steps
    ref = ks.sample_euler(model, x, sigmas, disable=True)
    assert (ours - ref).abs().max().item() <= 1e-6
    assert (ours - x).abs().max().item() > 1.0


def test_callable_noise_scale_function(analytic):
    model = analytic("edm")
    sigmas = edm_sigmas(8, 0.01, 20.0)
    x = model.prior_sample(2, 20.0, torch.Generator().manual_seed(1))
    a = sample_er_sde(model, x, sigmas, noise_scale_function=lambda s: s**2, extra_args={"seed": 4}, disable=True)
    b = sample_er_sde(model, x, sigmas, noise_scale_function="original_sde", extra_args={"seed": 4}, disable=True)
    assert (a - b).abs().max().item() <= 1e-10


# --- exactness for polynomial denoisers ----------------------------------------------------


def _variable(mt, expansion):
    """The variable D is a polynomial in, as a function of the VE sigma s: the model's own sigma
    (s on VE models, the flow sigma s / (1 + s) on flow models) or lambda = -log s."""
    if expansion == "lambda":
        return lambda u: -mp.log(u) if isinstance(u, mp.mpf) else -math.log(u)
    return (lambda u: u / (1 + u)) if mt.is_flow else (lambda u: u)


class _PolyDenoiser:
    """D(x, sigma) = sum_m c_m v^m whatever x, v = :func:`_variable` of the VE sigma."""

    def __init__(self, mt, coeffs, expansion="sigma"):
        self.mt, self.coeffs, self.seeds_model_type = mt, coeffs, mt
        self.var = _variable(mt, expansion)

    def __call__(self, x, sigma, **kw):
        v = self.var(self.mt.ve_sigma(float(sigma.reshape(-1)[0])))
        return sum(c * v**m for m, c in enumerate(self.coeffs)).expand_as(x).clone()


def _exact_er_step(mt, x, sig0, sig1, coeffs, name, eta, expansion="sigma"):
    """x at sig1 from x at sig0 without noise: y' = r y + phi(s') int_{s'}^{s} phi'/phi^2 D du."""
    mp.mp.dps = 30
    ref = phi_eta_mp(name, eta)
    s0, s1 = mt.ve_sigma(sig0), mt.ve_sigma(sig1)
    p0, p1 = ref(mp.mpf(s0)), ref(mp.mpf(s1))
    y = x / mt.alpha(sig0)
    out = float(p1 / p0) * y
    var = _variable(mt, expansion)
    for m, c in enumerate(coeffs):
        k = mp.quad(lambda u: mp.diff(ref, u) / ref(u) ** 2 * var(u) ** m, [mp.mpf(s1), mp.mpf(s0)])
        out = out + float(p1 * k) * c
    return out * mt.alpha(sig1)


@pytest.mark.parametrize("mt, expansion", [(VE, "sigma"), (VE, "lambda"), (FLOW, "lambda")],
                         ids=["ve-sigma", "ve-lambda", "flow-lambda"])
@pytest.mark.parametrize("name,eta", [("sde_5", 1.0), ("original_sde", 1.0), ("sde_2", 1.0),
                                      ("sde_4", 1.0), ("sde_1", 0.5), ("ode", 1.0)])
@pytest.mark.parametrize("order", [2, 3])
def test_orders_exact_for_polynomial_denoiser(mt, expansion, name, eta, order):
    """Order k is exact (after its warm-up steps) when D is a polynomial of degree k-1 in the
    expansion variable (s, or lambda with expansion="lambda", on VE and flow models alike); a
    degree-k polynomial is not integrated exactly (so the check has power). On flow models
    the sigma expansion takes its derivatives from a polynomial in the flow sigma (a Taylor
    step in s: not exact for any polynomial), so there its orders are measured instead
    (tests/test_sigma_steps.py)."""
    g = torch.Generator().manual_seed(order)
    shape = (1, 2, 3, 3)
    scale = 0.3 if expansion == "lambda" else 1.0  # lambda^3 reaches ~30 on these schedules
    coeffs = [scale * torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(order + 1)]
    sig = [0.93, 0.8, 0.62, 0.45, 0.3, 0.18, 0.09] if mt.is_flow else [12.0, 7.0, 4.0, 2.2, 1.1, 0.5, 0.2]
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    for degree in (order - 1, order):
        model = _PolyDenoiser(mt, coeffs[: degree + 1], expansion)
        states = []
        out = sample_er_sde(model, x, torch.tensor(sig, dtype=torch.float64), order=order,
                            noise_scale_function=name, eta=eta, s_noise=0.0, expansion=expansion,
                            callback=lambda d: states.append(d["x"]), disable=True)
        states.append(out)
        errs = []
        for i in range(order - 1, len(sig) - 1):
            want = _exact_er_step(mt, states[i], sig[i], sig[i + 1], coeffs[: degree + 1], name, eta, expansion)
            errs.append((states[i + 1] - want).abs().max().item() / max(want.abs().max().item(), 1.0))
        if degree == order - 1:
            assert max(errs) <= 1e-9, errs
        else:
            assert max(errs) > 1e-6, errs


# --- agreement with independent reimplementations of the update -----------------------------


def _reference_er_sde(model, x, sig, order, name, eta, official, noise):
    """ER-SDE in plain float64 NumPy/mpmath on a VE model, from docs/algorithms.md, ER-SDE.

    official=True: left 100-point Riemann integrals and D'(s_i) ~ Delta1_i (the paper's
    code); official=False: exact integrals and D'(s_i) ~ Delta1_i + (s_i - s_{i-1}) Delta2_i / 2.
    """
    mp.mp.dps = 25
    ref = phi_eta_mp(name, eta)
    xs = x.numpy().astype(np.float64)
    hist = []
    for i in range(len(sig) - 1):
        s, t = sig[i], sig[i + 1]
        d = model(torch.from_numpy(xs), torch.tensor([s] * xs.shape[0], dtype=torch.float64)).numpy()
        hist.append(d)
        if t == 0:
            xs = d
            continue
        k = min(order, i + 1)
        r = float(ref(mp.mpf(t)) / ref(mp.mpf(s)))
        if official:
            S = float(_left_riemann(lambda u: 1 / ref(u), t, s))
            S1 = float(_left_riemann(lambda u: (u - s) / ref(u), t, s))
        else:
            S = float(mp.quad(lambda u: 1 / ref(u), [t, s]))
            S1 = float(mp.quad(lambda u: (u - s) / ref(u), [t, s]))
        pt = float(ref(mp.mpf(t)))
        new = r * xs + (1 - r) * d
        if k >= 2:
            d1 = (d - hist[-2]) / (s - sig[i - 1])
            if k >= 3:
                d1p = (hist[-2] - hist[-3]) / (sig[i - 1] - sig[i - 2])
                d2 = 2 * (d1 - d1p) / (s - sig[i - 2])
                new = new + ((t - s) ** 2 / 2 + pt * S1) * d2
                if not official:
                    d1 = d1 + (s - sig[i - 1]) * d2 / 2
            new = new + ((t - s) + pt * S) * d1
        new = new + math.sqrt(max(t * t - r * r * s * s, 0.0)) * noise[i]
        xs = new
    return torch.from_numpy(xs)


@pytest.mark.parametrize("official", [True, False], ids=["riemann100-official", "gauss-third-order"])
@pytest.mark.parametrize("name", ["sde_5", "sde_4", "original_sde"])
def test_full_run_matches_independent_reimplementation(analytic, official, name):
    model = analytic("edm")
    sig = edm_sigmas(9, 0.01, 40.0).tolist()
    x = model.prior_sample(2, 40.0, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(3)
    noise = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in sig]
    it = iter(noise)
    ours = sample_er_sde(model, x, torch.tensor(sig, dtype=torch.float64), order=3, noise_scale_function=name,
                         quadrature="riemann100" if official else "gauss",
                         noise_sampler=lambda a, b: next(it), disable=True)
    want = _reference_er_sde(model, x, sig, 3, name, 1.0, official, [n.numpy() for n in noise])
    assert (ours - want).abs().max().item() <= 1e-9
    # the two derivative estimates differ: the default is not the official update
    other = _reference_er_sde(model, x, sig, 3, name, 1.0, not official, [n.numpy() for n in noise])
    assert (ours - other).abs().max().item() > 1e-6


# --- noise --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PHI_MP))
def test_eta0_is_the_ode_and_draws_no_noise(edm_case, name):
    model, x, sigmas = edm_case(4)
    a = sample_er_sde(model, x, sigmas, noise_scale_function=name, eta=0.0, noise_sampler=no_noise, disable=True)
    state = torch.get_rng_state()  # without a seed a stochastic run would draw one from torch's RNG
    assert torch.equal(sample_er_sde(model, x, sigmas, noise_scale_function=name, eta=0.0, disable=True), a)
    assert torch.equal(state, torch.get_rng_state())
    b = sample_er_sde(model, x, sigmas, noise_scale_function="ode", disable=True)
    assert (a - b).abs().max().item() <= 1e-12
    calls = []
    sample_er_sde(model, x, sigmas, noise_scale_function=name, eta=1.0, disable=True,
                  noise_sampler=lambda s, t: calls.append(1) or torch.zeros_like(x))
    assert len(calls) == (0 if name == "ode" else len(sigmas) - 2)


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_injected_noise_variance(mt):
    """One step from x = 0 with D = 0: x' = alpha' sqrt(s'^2 - r^2 s^2) s_noise xi."""
    sig = [0.7, 0.4] if mt.is_flow else [3.0, 1.4]

    class Zero:
        seeds_model_type = mt

        def __call__(self, x, sigma, **kw):
            return torch.zeros_like(x)

    x = torch.zeros(4, 1, 100, 100, dtype=torch.float64)
    out = sample_er_sde(Zero(), x, torch.tensor(sig, dtype=torch.float64), s_noise=0.8,
                        extra_args={"seed": 5}, disable=True)
    phi = noise_scale_function("sde_5")
    s0, s1 = mt.ve_sigma(sig[0]), mt.ve_sigma(sig[1])
    r = float(phi(s1) / phi(s0))
    var = (0.8 * mt.alpha(sig[1])) ** 2 * (s1**2 - r * r * s0**2)
    n = out.numel()
    assert out.var().item() == pytest.approx(var, rel=5 * math.sqrt(2 / n))
    assert abs(out.mean().item()) <= 5 * math.sqrt(var / n)


def test_lagrange_derivatives_exact_for_polynomials():
    """The derivative weights ER-SDE uses: exact first and second derivatives at the newest
    node for polynomials of degree < the number of nodes."""
    from seeds_samplers.samplers.lagrange import lagrange_derivatives

    nodes = [0.31, 0.52, 0.9]
    d1, d2 = lagrange_derivatives(nodes)
    for coeffs in ([1.0], [0.3, -2.0], [0.7, 1.5, -4.0]):
        f = [sum(c * u**m for m, c in enumerate(coeffs)) for u in nodes]
        u0 = nodes[0]
        want1 = sum(m * c * u0 ** (m - 1) for m, c in enumerate(coeffs) if m >= 1)
        want2 = sum(m * (m - 1) * c * u0 ** (m - 2) for m, c in enumerate(coeffs) if m >= 2)
        assert sum(a * b for a, b in zip(d1, f)) == pytest.approx(want1, abs=1e-12)
        assert sum(a * b for a, b in zip(d2, f)) == pytest.approx(want2, abs=1e-11)
    cubic = [u**3 for u in nodes]  # degree 3 through 3 nodes: not exact (the check has power)
    assert abs(sum(a * b for a, b in zip(d2, cubic)) - 6 * nodes[0]) > 1e-3


# --- the lambda expansion ---------------------------------------------------------------------


@pytest.mark.parametrize("expansion, solver_type", [("lambda", "heun"), ("midpoint", "midpoint")])
def test_order2_original_sde_in_lambda_is_k_diffusion_dpmpp_2m_sde(analytic, expansion, solver_type):
    """phi = s^2 in lambda at order 2 is SDE-DPM-Solver++(2M): with the exact weight k-diffusion's
    dpmpp_2m_sde(solver_type="heun"), with the midpoint rule its default; given the same noise,
    at eta 1 and, through the eta family phi_eta = s^(1 + eta), at its eta 2. The other rule and
    the paper's sigma expansion are different updates."""
    from k_diffusion import sampling as ks

    model = analytic("edm")
    sigmas = edm_sigmas(10, 0.01, 40.0)
    x = model.prior_sample(3, 40.0, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(5)
    noise = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(len(sigmas))]

    def run(fn, **kw):
        it = iter(noise)
        return fn(model, x, sigmas, disable=True, noise_sampler=lambda a, b: next(it), **kw)

    def er_sde(e, eta):
        return run(sample_er_sde, order=2, noise_scale_function="original_sde", expansion=e, eta=eta)

    for eta in (1.0, 2.0):
        ours = er_sde(expansion, eta)
        assert (ours - run(ks.sample_dpmpp_2m_sde, eta=eta, solver_type=solver_type)).abs().max().item() <= 1e-9
        for other in {"sigma", "lambda", "midpoint"} - {expansion}:
            assert (ours - er_sde(other, eta)).abs().max().item() > 1e-4


def test_lambda_expansion_refuses_the_official_rule(edm_case):
    model, x, sigmas = edm_case(4)
    with pytest.raises(ValueError, match="riemann100"):
        sample_er_sde(model, x, sigmas, expansion="lambda", quadrature="riemann100", disable=True)


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_midpoint_is_second_order_and_exact_for_linear_in_lambda(mt):
    """The midpoint and the exact lambda weights agree to O(h^3) per step (so midpoint stays
    second order): on D = c0 + c1 lambda their one-step difference shrinks 8-fold when h halves."""
    g = torch.Generator().manual_seed(3)
    shape = (1, 1, 2, 2)
    coeffs = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2)]
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    errs = []
    for h in (0.2, 0.1, 0.05):
        lam0 = 0.3
        lams = [lam0 - h, lam0, lam0 + h]
        sig = [mt.sigma_at(v) for v in lams]
        outs = {}
        for e in ("lambda", "midpoint"):
            outs[e] = sample_er_sde(_PolyDenoiser(mt, coeffs, "lambda"), x, torch.tensor(sig, dtype=torch.float64), order=2,
                                    noise_scale_function="original_sde", s_noise=0.0, expansion=e,
                                    sigma_steps=False, disable=True)
        errs.append((outs["lambda"] - outs["midpoint"]).abs().max().item())
    assert errs[0] > 1e-8
    rates = [math.log2(errs[k] / errs[k + 1]) for k in range(2)]
    assert all(2.7 < r < 3.3 for r in rates), (errs, rates)


@pytest.mark.parametrize("order", [2, 3])
def test_auto_takes_the_midpoint_rule_on_steps_longer_than_midpoint_above_h(order):
    """expansion="auto": on a VE/VP model every step's weights (D history, corrector, noise)
    are the exact lambda form's on steps up to ``midpoint_above_h`` in half-log-SNR and the
    midpoint rule's on longer ones (karras steps grow from h ~0.5 to ~1 at 10 steps, so both
    occur); 0 is the midpoint rule everywhere; a flow model takes the exact weight everywhere."""
    from seeds_samplers.samplers.er_sde import _ERSDE
    from seeds_samplers.samplers.run import Method, SamplerRun, Variable

    def coefficients(mt, sig, expansion, above):
        x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
        run = SamplerRun(lambda x, s, **kw: x, x, sig, disable=True, model_type=mt,
                         method=Method(order=3, multistep=True, variable=Variable.LAMBDA, stochastic=True,
                                       denoised_depth=order + 1))
        solver = _ERSDE(run, order, _Phi("original_sde", 1.0, "gauss"), 1.0, None, "gaussian", expansion,
                        corrector=True, midpoint_above_h=above)
        return run, solver.coef

    def same(a, b):
        return (a["cx"] == pytest.approx(b["cx"], abs=1e-15) and a["noise"] == pytest.approx(b["noise"], abs=1e-15)
                and a["w"] == pytest.approx(b["w"], abs=1e-13)
                and (a["correction"] or []) == pytest.approx(b["correction"] or [], abs=1e-13))

    sig = edm_sigmas(10, 0.03, 14.6)
    run, auto = coefficients(VE, sig, "auto", 0.7)
    _, exact = coefficients(VE, sig, "lambda", 0.0)
    _, mid = coefficients(VE, sig, "midpoint", 0.0)
    h = {i: run.lam[i + 1] - run.lam[i] for i in auto}
    assert {i for i in h if h[i] <= 0.7} and {i for i in h if h[i] > 0.7}
    for i in auto:
        assert same(auto[i], exact[i] if h[i] <= 0.7 else mid[i]), i
        if i >= 1:  # the two rules differ on every step with a history
            assert not same(exact[i], mid[i]), i
    _, zero = coefficients(VE, sig, "auto", 0.0)
    assert all(same(zero[i], mid[i]) for i in mid)
    flow_sig = torch.linspace(1.0, 0.05, 11, dtype=torch.float64)
    _, flow_auto = coefficients(FLOW, flow_sig, "auto", 0.0)
    _, flow_exact = coefficients(FLOW, flow_sig, "lambda", 0.0)
    assert all(same(flow_auto[i], flow_exact[i]) for i in flow_exact)


# --- the corrector ----------------------------------------------------------------------------


@pytest.mark.parametrize("mt, expansion", [(VE, "sigma"), (VE, "lambda"), (FLOW, "lambda"), (VE, "midpoint")],
                         ids=["ve-sigma", "ve-lambda", "flow-lambda", "ve-midpoint"])
def test_corrector_step_is_exact_for_a_parabola(mt, expansion):
    """Order 2 with the corrector: once D_{i+1} is known, step i is redone with the parabola
    through D_{i+1}, D_i, D_{i-1}, so each corrected step (i >= 1) is exact for D quadratic in
    the expansion variable and not for a cubic; the midpoint rule takes the parabola's value
    at the step's lambda-midpoint, so it is exact only for a line and errs by O(h^3) on the
    parabola. Driven step by step as the loop does (:meth:`SamplerRun.run`), to see the
    corrected states, which no callback reports."""
    from seeds_samplers.samplers.er_sde import _ERSDE
    from seeds_samplers.samplers.run import History, Method, SamplerRun, Variable

    g = torch.Generator().manual_seed(11)
    shape = (1, 2, 2, 2)
    coeffs = [0.3 * torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4)]
    sig = [0.93, 0.8, 0.62, 0.45, 0.3, 0.18] if mt.is_flow else [12.0, 7.0, 4.0, 2.2, 1.1, 0.5]
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    var = "lambda" if expansion == "midpoint" else expansion
    for degree in (2, 3):
        model = _PolyDenoiser(mt, coeffs[: degree + 1], var)
        run = SamplerRun(model, x0, torch.tensor(sig, dtype=torch.float64), disable=True, sigma_steps=False,
                         method=Method(order=2, multistep=True, variable=Variable.LAMBDA, stochastic=True,
                                       denoised_depth=3))
        solver = _ERSDE(run, 2, _Phi("sde_5", 1.0, "gauss"), 0.0, None, "gaussian", expansion, corrector=True)
        history, x, errs = History(0, 3), x0, []
        for i in range(run.n_steps):
            history.push(run.sigma[i], None, model(x, run.sigma_dev[i]))
            if i >= 1 and solver.corrects(i - 1):
                x = solver.correct(i - 1, x, history)
                if i >= 2:
                    want = _exact_er_step(mt, start, sig[i - 1], sig[i], coeffs[: degree + 1], "sde_5", 1.0, var)
                    errs.append((x - want).abs().max().item() / max(want.abs().max().item(), 1.0))
            start = x
            x = solver.step(i, x, history.denoised[0], history)
        assert [solver.corrects(i) for i in range(run.n_steps)] == [True] * (run.n_steps - 1) + [False]
        if degree == 2 and expansion != "midpoint":
            assert max(errs) <= 1e-9, errs
        else:
            assert max(errs) > 1e-6, errs


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_corrector_keeps_the_injected_noise(mt):
    """The correction reweighs the D values only (its weights sum to zero): with D constant
    the corrected and uncorrected runs agree to round-off given the same noise, whatever the
    noise; with D varying they differ."""
    sig = torch.tensor([0.9, 0.7, 0.5, 0.3, 0.15] if mt.is_flow else [10.0, 4.0, 1.5, 0.6, 0.2], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)
    c = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
    for coeffs, same in (([c], True), ([c, 0.5 * c], False)):
        model = _PolyDenoiser(mt, coeffs, "lambda")
        outs = [sample_er_sde(model, x, sig, order=2, noise_scale_function="original_sde", expansion="midpoint",
                              corrector=on, extra_args={"seed": 9}, disable=True) for on in (False, True)]
        diff = (outs[0] - outs[1]).abs().max().item()
        assert (diff < 1e-12) if same else (diff > 1e-4), diff


def test_corrector_refuses_the_official_rule(edm_case):
    model, x, sigmas = edm_case(4)
    with pytest.raises(ValueError, match="corrector"):
        sample_er_sde(model, x, sigmas, corrector=True, quadrature="riemann100", disable=True)


def test_corrector_replaces_the_corrected_start(edm_case):
    """Order 3, deterministic: the corrector's first correction (a line through D_0, D_1)
    is the corrected start, which is then not applied a second time: with three steps (the
    last one to sigma = 0 returns D, so only step 0 is corrected) both runs agree."""
    model, x, sigmas = edm_case(3)
    sig = torch.cat([sigmas[:3], sigmas.new_zeros(1)])
    a = sample_er_sde(model, x, sig, order=3, eta=0.0, disable=True)
    b = sample_er_sde(model, x, sig, order=3, eta=0.0, corrector=True, disable=True)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_corrector_feeds_the_final_extrapolation_a_consistent_eps(mixture4):
    """A flow model's last step extrapolates the stored eps to sigma = 0 from the corrected
    state. Noise on every step leaves it one eps (the history is forgotten after noise), so
    the result is x - sigma eps: with eps re-read at the corrected x (the loop's rule) that is
    D(x, sigma_last) exactly, as without the corrector; with the uncorrected eps it would be
    D plus the whole correction."""
    from seeds_samplers.bench.gmm import AnalyticDenoiser
    from seeds_samplers.bench.host_schedules import host_sigmas

    model = AnalyticDenoiser(mixture4, kind="flow", shift=3.0)
    x = model.prior_sample(3, model.sigma_max, torch.Generator().manual_seed(4))
    sig = host_sigmas("simple", 12, model.seeds_model_type)
    seen = []
    out = sample_er_sde(model, x, sig, order=2, noise_scale_function="original_sde", expansion="midpoint",
                        corrector=True, extra_args={"seed": 3}, disable=True, callback=seen.append)
    assert float(sig[-2]) < 0.27  # lambda above FINAL_AB_LAMBDA: the step to 0 extrapolates
    torch.testing.assert_close(out, seen[-1]["denoised"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("mt, same_as", [(VE, "midpoint"), (FLOW, "lambda")], ids=["ve", "flow"])
def test_auto_expansion_follows_the_model_type(mt, same_as):
    """``expansion="auto"`` (the menu entry's): the exact lambda weight on flow models, the
    midpoint rule on the others; bit-equal to naming it, and not to the other one."""
    g = torch.Generator().manual_seed(8)
    coeffs = [torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64) for _ in range(3)]
    x = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    sig = torch.tensor([0.9, 0.7, 0.45, 0.25, 0.1] if mt.is_flow else [10.0, 4.0, 1.5, 0.6, 0.2], dtype=torch.float64)
    model = _PolyDenoiser(mt, coeffs, "lambda")
    run = {e: sample_er_sde(model, x, sig, order=2, noise_scale_function="original_sde", expansion=e, corrector=True,
                            extra_args={"seed": 1}, disable=True) for e in ("auto", "lambda", "midpoint")}
    other = "lambda" if same_as == "midpoint" else "midpoint"
    assert torch.equal(run["auto"], run[same_as])
    assert (run["auto"] - run[other]).abs().max().item() > 1e-6


# --- long steps (long_step_ratio) ---------------------------------------------------------------


def _long_last_step(mt):
    """Sigmas whose half-log-SNR steps are 0.4, 0.4, 0.4 and 2.0: the last step 5 times the one
    before, as the hosts' normal schedule ends; then 0."""
    lams = [-1.0, -0.6, -0.2, 0.2, 2.2]
    return torch.tensor([mt.sigma_at(v) for v in lams] + [0.0], dtype=torch.float64)


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_long_step_ratio_changes_only_long_noise_steps(edm_case, mt):
    """The rule acts on a noise step longer than ratio x the step before, and nowhere else: not
    below the ratio, not on a schedule without a long step, not on the ODE."""
    model, x, _ = edm_case(2)
    model.seeds_model_type = mt
    long = _long_last_step(mt)
    even = torch.tensor([mt.sigma_at(v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)] + [0.0], dtype=torch.float64)
    x = x / 10.0 if mt.is_flow else x  # a flow model's prior: unit noise

    def run(sigmas, ratio, noise="original_sde"):
        return sample_er_sde(model, x, sigmas, order=3, noise_scale_function=noise, corrector=True,
                             long_step_ratio=ratio, extra_args={"seed": 7}, disable=True)

    assert not torch.equal(run(long, 2.0), run(long, 0.0))
    assert torch.equal(run(long, 6.0), run(long, 0.0))  # 5 x the step before: below the ratio
    assert torch.equal(run(even, 1.5), run(even, 0.0))
    assert torch.equal(run(long, 2.0, noise="ode"), run(long, 0.0, noise="ode"))
    with pytest.raises(ValueError, match="long_step_ratio"):
        run(long, -1.0)


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_the_midpoint_rule_reads_a_long_step_half_as_far(edm_case, mt):
    """The ratio compares how far ahead of the newest node a step reads its D history with the
    step before: the whole step for the lambda expansion, half of it for the midpoint rule. On a
    step 5 times the one before, ratio 3 acts on the lambda form and not on the midpoint rule
    (2.5 times ahead), ratio 2 on both, at orders 2 and 3."""
    model, x, _ = edm_case(2)
    model.seeds_model_type = mt
    long = _long_last_step(mt)
    x = x / 10.0 if mt.is_flow else x

    def acts(expansion, ratio, order):
        run = [sample_er_sde(model, x, long, order=order, noise_scale_function="original_sde", corrector=True,
                             expansion=expansion, long_step_ratio=r, extra_args={"seed": 7}, disable=True)
               for r in (ratio, 0.0)]
        return not torch.equal(*run)

    for order in (2, 3):
        assert acts("lambda", 3.0, order) and acts("lambda", 2.0, order)
        assert acts("midpoint", 2.0, order) and not acts("midpoint", 3.0, order)


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_corrector_max_sigma_corrects_only_the_low_noise_steps(edm_case, mt):
    """``corrector_max_sigma`` leaves the steps that start above it (in the VE-equivalent sigma)
    uncorrected: a bound above every sigma is the plain corrector, one below every sigma the
    predictor alone, one in between neither."""
    model, x, _ = edm_case(2)
    model.seeds_model_type = mt
    sigmas = torch.tensor([mt.sigma_at(v) for v in (-2.0, -1.2, -0.4, 0.4, 1.2)] + [0.0], dtype=torch.float64)
    x = x / 10.0 if mt.is_flow else x * float(mt.ve_sigma(sigmas[0]))

    def run(bound=0.0, corrector=True):
        return sample_er_sde(model, x, sigmas, order=2, noise_scale_function="original_sde", corrector=corrector,
                             corrector_max_sigma=bound, extra_args={"seed": 5}, disable=True)

    ve = [float(mt.ve_sigma(s)) for s in sigmas[:-1]]
    everywhere = run()
    assert torch.equal(run(ve[0] * 1.01), everywhere)
    assert torch.equal(run(ve[-1] * 0.5), run(corrector=False))
    between = run(0.5 * (ve[1] + ve[2]))
    assert not torch.equal(between, everywhere) and not torch.equal(between, run(corrector=False))
    with pytest.raises(ValueError, match="corrector_max_sigma"):
        run(-1.0)


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_a_long_step_is_first_order_with_the_corrector_s_line(mt):
    """On the long step the predictor is first order and the corrector the line through D_i and
    D_{i+1}: with D linear in lambda (whatever x, so the noise does not reach D) the corrected
    run equals the run without the rule (both exact for a line, the noise identical); with D
    quadratic in lambda it does not (the line is not exact for a parabola, third order is)."""
    g = torch.Generator().manual_seed(11)
    shape = (1, 1, 2, 2)
    coeffs = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]
    x = torch.randn(shape, generator=g, dtype=torch.float64) * (1.0 if mt.is_flow else float(mt.ve_sigma(0.5)))
    # a short step after the long one: its model call feeds the long step's corrector
    sigmas = torch.cat([_long_last_step(mt)[:-1], torch.tensor([mt.sigma_at(2.4)], dtype=torch.float64)])

    def run(c, ratio):
        return sample_er_sde(_PolyDenoiser(mt, c, "lambda"), x, sigmas, order=3, noise_scale_function="original_sde",
                             expansion="lambda", corrector=True, long_step_ratio=ratio, sigma_steps=False,
                             extra_args={"seed": 3}, disable=True)

    assert (run(coeffs[:2], 2.0) - run(coeffs[:2], 0.0)).abs().max().item() < 1e-10
    assert (run(coeffs, 2.0) - run(coeffs, 0.0)).abs().max().item() > 1e-4


def _menu_acts(edm_case, flow: bool, entry: str):
    """``acts(schedule, n)``: whether the menu entry's ``long_step_ratio`` changes its samples on
    the hosts' schedule at n steps, on SD's discrete sigmas or a flow model (shift 3)."""
    from seeds_samplers.bench.host_schedules import host_sigmas
    from seeds_samplers.samplers.cfg_pp import menu_entries
    from support.host_types import FLOW as HOST_FLOW, SD

    mt = HOST_FLOW if flow else SD
    model, x, _ = edm_case(4)
    model.seeds_model_type = mt
    x = x / 10.0 if flow else x * float(mt.sigma_table[-1]) / 10.0  # the prior at the schedule's first sigma
    menu = next(e for e in menu_entries(cfg_pp=False) if e.id == entry).menu_settings()
    assert menu["long_step_ratio"] > 0

    def acts(name: str, n: int) -> bool:
        sig = host_sigmas(name, n, mt)
        run = [sample_er_sde(model, x, sig, **dict(menu, long_step_ratio=r), extra_args={"seed": 5}, disable=True)
               for r in (menu["long_step_ratio"], 0.0)]
        return not torch.equal(*run)

    return acts


@pytest.mark.parametrize("flow", [False, True], ids=["sd", "flow"])
@pytest.mark.parametrize("entry, first", [("er_sde", 4), ("er_sde_3m", 7)])
def test_the_menu_s_long_step_ratio_leaves_karras_alone(edm_case, flow, entry, first):
    """The menu entries' ``long_step_ratio`` acts on no step of the hosts' ``karras`` and
    ``exponential`` schedules from 4 steps on (``ss_er_sde``, 3) or 7 (``ss_er_sde_3m``, 1.25),
    on SD's discrete sigmas and a flow model (shift 3): their lambda-steps grow evenly, by at
    most 1.39 times from one step to the next at 4 steps and 1.22 from 7 on (SD's karras), so the
    samples equal the paper's update's and the karras tables' rows (8-20 calls) need no re-run
    when the ratio changes. Both act on the last noise step of ``normal`` (4-5 times the one
    before) but ``ss_er_sde`` on SD's sigmas, whose midpoint rule reads that step's line to its
    middle, 2.5 times the step before at most."""
    acts = _menu_acts(edm_case, flow, entry)
    for n in range(first, 41):
        assert not acts("karras", n) and not acts("exponential", n), n
    on_normal = flow or entry == "er_sde_3m"
    assert acts("normal", 8) == on_normal and acts("normal", 20) == on_normal


@pytest.mark.parametrize("flow", [False, True], ids=["sd", "flow"])
def test_the_menu_entry_s_rule_acts_on_normal_s_end_alone(edm_case, flow):
    """``ss_er_sde``'s ratio (3) lies in the gap between the hosts' milder long steps and
    ``normal``'s last one: silent on ``simple`` and ``sgm_uniform`` (last steps up to 1.67 times
    the one before at 4-50 steps) and ``beta`` (second step on SD's sigmas 1.3-2.3 times the
    first), where the first-order step moved the samples away from the SDE's law
    (docs/sweeps.md), and on a flow model acting on ``normal`` from 5 to 50 steps (its last
    step falls below 3 times the one before from about 61 steps). On SD's sigmas (``auto``: the
    midpoint rule on long steps, the exact weight on short ones, every step counted as read to
    its middle) it acts nowhere, and ``ss_er_sde_3m`` (1.25) on
    ``normal``'s last step alone."""
    acts = _menu_acts(edm_case, flow, "er_sde")
    three_m = _menu_acts(edm_case, flow, "er_sde_3m")
    for n in (4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50):
        assert not acts("simple", n) and not acts("sgm_uniform", n) and not acts("beta", n), n
        if n >= 5:
            assert acts("normal", n) == flow, n
        if not flow and n >= 7:
            assert three_m("normal", n) and not three_m("simple", n) and not three_m("beta", n), n
    if flow:  # ss_er_sde_3m (1.25) still takes simple's last step at first order: a parabola amplifies more
        assert three_m("simple", 30)


def _menu_runs(edm_case, entry: str):
    """``run(schedule, n, **change)``: the menu entry's samples on SD's discrete sigmas of the
    hosts' schedule at n steps, its settings updated by ``change``."""
    from seeds_samplers.bench.host_schedules import host_sigmas
    from seeds_samplers.samplers.cfg_pp import menu_entries
    from support.host_types import SD

    model, x, _ = edm_case(4)
    model.seeds_model_type = SD
    x = x * float(SD.sigma_table[-1]) / 10.0
    menu = next(e for e in menu_entries(cfg_pp=False) if e.id == entry).menu_settings()

    def run(name: str, n: int, **change) -> torch.Tensor:
        return sample_er_sde(model, x, host_sigmas(name, n, SD), **dict(menu, **change), extra_args={"seed": 5},
                             disable=True)

    return run


def test_the_menu_takes_the_exact_weight_on_short_steps_but_not_where_a_step_extrapolates_far(edm_case):
    """``ss_er_sde`` on SD-type models (``auto``, ``midpoint_above_h`` 0.55 by default): the
    exact lambda weight on the short noise steps of ``simple`` and ``sgm_uniform`` (its samples
    differ from the midpoint rule's everywhere), but on ``normal``, whose last step it
    extrapolates 1.5-2.5 spacings ahead (above FAR_READ, below its long-step ratio), the
    midpoint rule on every step: bit-equal to ``midpoint_above_h=0``, the samples of before.
    ``ss_er_sde_3m`` takes that step at first order (ratio 1.25), so the guard leaves it the
    exact weight on ``normal``'s short steps; the ODE entry, without noise, keeps the midpoint
    rule everywhere."""
    er, three_m, ode = (_menu_runs(edm_case, e) for e in ("er_sde", "er_sde_3m", "er_sde_ode"))
    for n in (5, 8, 10, 20, 30):
        assert torch.equal(er("normal", n), er("normal", n, midpoint_above_h=0.0)), n
    for n in (8, 10, 20, 30):  # at 5 steps every step of these schedules is longer than 0.55
        assert not torch.equal(three_m("normal", n), three_m("normal", n, midpoint_above_h=0.0)), n
        for name in ("simple", "sgm_uniform"):
            assert not torch.equal(er(name, n), er(name, n, midpoint_above_h=0.0)), (name, n)
            assert torch.equal(ode(name, n), ode(name, n, midpoint_above_h=0.0)), (name, n)
