"""iPNDM and variable-step iPNDM: closed-form weights, the weights the sampler actually
uses, and the sampler contract. Their measured convergence orders (VE and flow) are in
tests/test_deis.py, which shares the reference solves with the DEIS variants.
"""

from __future__ import annotations

from fractions import Fraction
from typing import List

import numpy as np
import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.samplers.deis import sample_deis
from seeds_samplers.samplers.ipndm import IPNDM_VARIANTS, IPNDM_WEIGHTS, ipndm_coefficients, sample_ipndm
from seeds_samplers.samplers.lagrange import rhoab_coefficients
from seeds_samplers.samplers.registry import SAMPLERS
from seeds_samplers.samplers.schedules import edm_sigmas


from support.solver_doubles import F64, Counting, PolyEpsModel, polynomial, record



def adams_bashforth(k: int) -> List[Fraction]:
    """Exact constant-step AB weights: int_0^1 l_j(v) dv, Lagrange basis through the nodes
    0, -1, ..., -(k-1) (the current and previous steps), with rational arithmetic."""
    nodes = [Fraction(-m) for m in range(k)]
    out = []
    for j, vj in enumerate(nodes):
        poly = [Fraction(1)]  # ascending coefficients of prod_{m != j} (v - v_m) / (v_j - v_m)
        for m, vm in enumerate(nodes):
            if m == j:
                continue
            d = vj - vm
            poly = [((poly[i - 1] if i > 0 else 0) - vm * (poly[i] if i < len(poly) else 0)) / d
                    for i in range(len(poly) + 1)]
        out.append(sum(c / (i + 1) for i, c in enumerate(poly)))
    return out


def test_fixed_weights_are_the_adams_bashforth_closed_forms():
    expected = {1: [1], 2: [Fraction(3, 2), Fraction(-1, 2)], 3: [Fraction(23, 12), Fraction(-16, 12), Fraction(5, 12)],
                4: [Fraction(55, 24), Fraction(-59, 24), Fraction(37, 24), Fraction(-9, 24)]}
    for k in (1, 2, 3, 4):
        assert adams_bashforth(k) == expected[k]
        assert list(IPNDM_WEIGHTS[k - 1]) == pytest.approx([float(v) for v in expected[k]], rel=1e-15)


@pytest.mark.parametrize("s0, h", [(14.6, -0.3), (1.0, -1e-3), (0.5, -0.05), (0.99, -0.2)])
def test_variable_step_weights_reduce_to_the_fixed_ones_on_equal_steps(s0, h):
    for k in (1, 2, 3, 4):
        nodes = [s0 - m * h for m in range(k)]
        var = rhoab_coefficients(nodes, s0, s0 + h)
        fixed = ipndm_coefficients(nodes, s0, s0 + h)
        assert var == pytest.approx(fixed, rel=1e-12, abs=1e-14 * abs(h))


def test_variable_step_weights_on_unequal_steps():
    # two nodes, steps h (now) and h_prev: the classic variable-step AB2 weights
    s_prev, s0, s1 = 2.0, 1.5, 1.2
    h, hp = s1 - s0, s0 - s_prev
    r = h / hp
    assert rhoab_coefficients([s0, s_prev], s0, s1) == pytest.approx([h * (1 + r / 2), -h * r / 2], rel=1e-14)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_fixed_sampler_steps_use_the_closed_form_weights(order):
    model = PolyEpsModel(polynomial(np.random.default_rng(order).normal(size=5)))  # eps not polynomial of low degree
    sig = torch.linspace(3.0, 0.5, 11, dtype=F64)  # equal steps
    xs = record(sample_ipndm, model, torch.zeros(1, 2, dtype=F64), sig, order=order, variant="fixed")[0]
    s = sig.tolist()
    h = s[1] - s[0]
    for i in range(len(s) - 1):
        k = min(order, i + 1)  # warm-up
        want = h * sum(float(b) * model.g(s[i - j]) for j, b in enumerate(adams_bashforth(k)))
        assert float((xs[i + 1] - xs[i])[0, 0]) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_variable_sampler_is_exact_for_eps_polynomial_on_any_grid(order):
    coeffs = np.random.default_rng(10 + order).normal(size=order)  # degree order - 1
    model = PolyEpsModel(polynomial(coeffs))
    sig = edm_sigmas(10, 0.05, 8.0, 7.0)[:-1]  # very unequal steps
    xs = record(sample_ipndm, model, torch.zeros(1, 2, dtype=F64), sig, order=order, variant="variable")[0]
    P = np.polynomial.polynomial.polyint(coeffs)
    s = sig.tolist()
    for i in range(order - 1, len(s) - 1):
        exact = np.polynomial.polynomial.polyval(s[i + 1], P) - np.polynomial.polynomial.polyval(s[i], P)
        # (round-off: the large alternating weights of very unequal steps cancel)
        assert float((xs[i + 1] - xs[i])[0, 0]) == pytest.approx(exact, rel=1e-9, abs=1e-13)
    if order >= 3:  # while the fixed weights are not, on this grid
        fixed = record(sample_ipndm, model, torch.zeros(1, 2, dtype=F64), sig, order=order, variant="fixed")[0]
        i = len(s) - 2
        exact = np.polynomial.polynomial.polyval(s[i + 1], P) - np.polynomial.polynomial.polyval(s[i], P)
        assert abs(float((fixed[i + 1] - fixed[i])[0, 0]) - exact) > 1e-6 * abs(exact)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_variable_step_ipndm_is_rho_ab_deis(order, mix):
    model = AnalyticDenoiser(mix, kind="vp_discrete")
    sig = edm_sigmas(12, model.sigma_min, model.sigma_max, 7.0)
    x = model.prior_sample(2, float(sig[0]), torch.Generator().manual_seed(7))
    a = sample_ipndm(model, x, sig, order=order, variant="variable", disable=True)
    b = sample_deis(model, x, sig, variant="rhoab", order=order, lower_order_final=False, disable=True)
    assert torch.equal(a, b)


def _setup(mix, n=8, batch=2, kind="vp_discrete"):
    inner = AnalyticDenoiser(mix, kind=kind)
    model = Counting(inner)
    sig = edm_sigmas(n, inner.sigma_min, inner.sigma_max, 7.0) if kind != "flow" else torch.linspace(1, 0, n + 1, dtype=F64)
    x = inner.prior_sample(batch, float(sig[0]), torch.Generator().manual_seed(2))
    return model, x, sig


@pytest.mark.parametrize("variant", IPNDM_VARIANTS)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_final_step_callback_and_calls(variant, order, mix):
    model, x, sig = _setup(mix)
    calls = []
    out = sample_ipndm(model, x, sig, order=order, variant=variant, disable=True, callback=calls.append)
    n = len(sig) - 1
    assert [c["i"] for c in calls] == list(range(n)) and model.calls == n
    assert set(calls[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    assert torch.equal(out, calls[-1]["denoised"])
    assert out.dtype == x.dtype and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("variant", IPNDM_VARIANTS)
def test_stop_at_sigma_min_and_schedules_without_zero(variant, mix):
    model, x, sig = _setup(mix)
    a = sample_ipndm(model, x, sig, variant=variant, stop_at_sigma_min=True, disable=True)
    b = sample_ipndm(model, x, sig[:-1], variant=variant, disable=True)
    assert torch.equal(a, b) and model.calls == 2 * (len(sig) - 2)


@pytest.mark.parametrize("variant", IPNDM_VARIANTS)
def test_flow_model_with_first_sigma_one(variant, mix):
    model, x, sig = _setup(mix, n=12, batch=3, kind="flow")
    out = sample_ipndm(model, x, sig, variant=variant, disable=True)
    assert model.sigmas[0] == model.model.seeds_model_type.flow_first_sigma
    fine = sample_deis(model.model, x, torch.linspace(1.0, 0.0, 201, dtype=F64), variant="rhork", order=4, disable=True)
    assert bool(torch.isfinite(out).all()) and float((out - fine).abs().max()) < 0.05


def test_half_precision_latents(mix):
    model, x, sig = _setup(mix)
    out16 = sample_ipndm(model, x.half(), sig, disable=True)
    out32 = sample_ipndm(model, x.float(), sig, disable=True)
    assert out16.dtype == torch.float16 and torch.allclose(out16.float(), out32, atol=2e-2)


def test_registry_entry(mix):
    spec = SAMPLERS["ipndm"]
    assert spec.function is sample_ipndm and spec.family == "ipndm" and spec.host_name == "ss_ipndm"
    assert spec.calls() == 1 and spec.calls(order=1, variant="variable") == 1 and not spec.is_stochastic()
    model, x, sig = _setup(mix)
    assert bool(torch.isfinite(spec.function(model, x, sig, disable=True, **spec.defaults())).all())
