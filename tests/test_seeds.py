"""SEEDS-1/2/3: equivalences with k-diffusion, exactness of the phi-function weights,
and the Markov-preserving stage noise of docs/algorithms.md (SEEDS)."""

from __future__ import annotations

import math

import pytest
import torch

from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.model_types import FLOW, VE
from seeds_samplers.samplers.run import SamplerRun
from seeds_samplers.samplers.schedules import edm_sigmas, logsnr_uniform_sigmas, sd_discrete_sigmas
from seeds_samplers.samplers.seeds import _Step, sample_seeds_1, sample_seeds_2, sample_seeds_3
from support.solver_doubles import no_noise

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = {1: sample_seeds_1, 2: sample_seeds_2, 3: sample_seeds_3}


def _max_diff(a, b):
    return (a.to(torch.float64) - b.to(torch.float64)).abs().max().item()


# --- equivalences -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["edm", "vp_discrete"])
def test_seeds2_eta0_equals_dpmpp_2s_ancestral(analytic, kind):
    from k_diffusion import sampling as ks

    model = analytic(kind)
    sigmas = edm_sigmas(12, 0.002, 80.0) if kind == "edm" else sd_discrete_sigmas(12)
    x = model.prior_sample(4, float(sigmas[0]), torch.Generator().manual_seed(0))
    ours = sample_seeds_2(model, x, sigmas, eta=0.0, r=0.5, disable=True, sigma_steps=False)  # the paper's steps
    ref = ks.sample_dpmpp_2s_ancestral(model, x, sigmas, eta=0.0, disable=True)
    assert ours.dtype == torch.float64
    assert _max_diff(ours, ref) <= 1e-6
    assert _max_diff(ours, x) > 1.0  # it did sample


@pytest.mark.parametrize("kind", ["edm", "flow"])
def test_seeds1_sde_equals_er_sde1_original_sde(analytic, kind):
    """SEEDS-1 at eta = 1 is ER-SDE-1 with phi(s) = s^2 (the reverse SDE), on the same noise."""
    model = analytic(kind)
    smax = 80.0 if kind == "edm" else 1.0
    sigmas = edm_sigmas(10, 0.002, 80.0) if kind == "edm" else torch.linspace(1.0, 0.0, 11, dtype=torch.float64)
    x = model.prior_sample(3, smax, torch.Generator().manual_seed(1))
    for extra in ({"seed": 7}, {"seed": 123456789}):
        a = sample_seeds_1(model, x, sigmas, extra_args=extra, eta=1.0, disable=True)
        b = sample_er_sde(model, x, sigmas, extra_args=extra, order=1,
                          noise_scale_function="original_sde", disable=True)
        assert _max_diff(a, b) <= 1e-6
    other = sample_seeds_1(model, x, sigmas, extra_args={"seed": 8}, eta=1.0, disable=True)
    assert _max_diff(a, other) > 1e-3  # the noise matters, so the comparison above is not vacuous


def test_seeds1_eta0_is_ddim_in_both_predictions(analytic):
    """eta = 0: data and noise prediction are both DDIM, x' = x + (s' - s) eps."""
    model = analytic("edm")
    sigmas = edm_sigmas(8, 0.01, 20.0)
    x = model.prior_sample(2, 20.0, torch.Generator().manual_seed(2))
    ddim = x.clone()
    s = sigmas.tolist()
    for i in range(len(s) - 1):
        d = model(ddim, torch.tensor(s[i], dtype=torch.float64))
        ddim = d if s[i + 1] == 0 else ddim + (s[i + 1] - s[i]) * (ddim - d) / s[i]
    for pred in ("data", "noise"):
        out = sample_seeds_1(model, x, sigmas, eta=0.0, prediction=pred, disable=True)
        assert _max_diff(out, ddim) <= 1e-10


# --- exactness of the exponential-integrator weights -------------------------------------


class _LinearInLambda:
    """A "denoiser" whose data (or noise) prediction is a + b * lambda, whatever x.

    With it the exact solution of the SDE's drift part is known in closed form, and the
    phi_2-weighted steps (SEEDS-2 'phi_2', SEEDS-3 '3a') must reproduce it exactly.
    """

    def __init__(self, mt, a, b, prediction):
        self.mt, self.a, self.b, self.prediction = mt, a, b, prediction
        self.seeds_model_type = mt

    def __call__(self, x, sigma, **kw):
        s = float(sigma.reshape(-1)[0])
        lam = self.mt.half_log_snr(s)
        value = self.a + self.b * lam
        if self.prediction == "data":
            return value.expand_as(x).clone()
        # eps = value  =>  D = (x - sigma eps) / alpha
        return (x - s * value) / self.mt.alpha(s)


def _exact_step(mt, x, s0, s1, a, b, eta, prediction):
    """Closed-form solution from s0 to s1 (no noise), in VE-equivalent variables."""
    al0, al1 = mt.alpha(s0), mt.alpha(s1)
    l0, l1 = mt.half_log_snr(s0), mt.half_log_snr(s1)
    v0, v1 = mt.ve_sigma(s0), mt.ve_sigma(s1)
    h = l1 - l0
    y = x / al0
    if prediction == "data":
        # dy/dlambda = -(1 + eta)(y - D):  y1 = e^{-H} y0 + (1 - e^{-H}) D(l0) + b h psi2(H)
        H = (1 + eta) * h
        psi2 = (math.expm1(-H) + H) / H
        y1 = math.exp(-H) * y + (-math.expm1(-H)) * (a + b * l0) + b * h * psi2
    else:
        # dy/ds = (1 + eta) eps;  int lambda ds = [(lambda + 1) s] between the ends
        int_lam = (l1 + 1) * v1 - (l0 + 1) * v0
        y1 = y + (1 + eta) * (a * (v1 - v0) + b * int_lam)
    return al1 * y1


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_phi2_steps_exact_for_prediction_linear_in_lambda(mt, prediction, eta):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64)
    x = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64)
    model = _LinearInLambda(mt, a, b, prediction)
    sig = [0.9, 0.6, 0.25, 0.05] if mt.is_flow else [14.0, 3.0, 0.7, 0.04]
    expected = x
    for s0, s1 in zip(sig[:-1], sig[1:]):
        expected = _exact_step(mt, expected, s0, s1, a, b, eta, prediction)
    sigmas = torch.tensor(sig, dtype=torch.float64)
    runs = {
        "seeds_2 phi_2": sample_seeds_2(model, x, sigmas, eta=eta, s_noise=0.0, variant="phi_2",
                                        prediction=prediction, disable=True, sigma_steps=False),
        "seeds_2 phi_2 r=0.3": sample_seeds_2(model, x, sigmas, eta=eta, s_noise=0.0, variant="phi_2",
                                              r=0.3, prediction=prediction, disable=True, sigma_steps=False),
        "seeds_3": sample_seeds_3(model, x, sigmas, eta=eta, s_noise=0.0, prediction=prediction, disable=True, sigma_steps=False),
        "seeds_3 r=(0.2,0.7)": sample_seeds_3(model, x, sigmas, eta=eta, s_noise=0.0, r1=0.2, r2=0.7,
                                              prediction=prediction, disable=True, sigma_steps=False),
    }
    scale = expected.abs().max().item()
    for name, out in runs.items():
        assert _max_diff(out, expected) <= 1e-11 * max(scale, 1.0), name
    # SEEDS-1 and the phi_1 variant are not exact for a sloped prediction: the check has power
    first = sample_seeds_1(model, x, sigmas, eta=eta, s_noise=0.0, prediction=prediction, disable=True, sigma_steps=False)
    assert _max_diff(first, expected) > 1e-4


def test_phi1_variant_is_second_order_close_to_phi2(analytic):
    """'phi_1' and 'phi_2' differ only at third order per step: their gap shrinks ~h^2 globally."""
    model = analytic("edm")
    x = model.prior_sample(2, 20.0, torch.Generator().manual_seed(4))
    gaps = []
    for n in (16, 32, 64):
        sigmas = logsnr_uniform_sigmas(n, 0.05, 20.0)[:-1]
        a = sample_seeds_2(model, x, sigmas, eta=0.0, variant="phi_1", disable=True)
        b = sample_seeds_2(model, x, sigmas, eta=0.0, variant="phi_2", disable=True)
        gaps.append(_max_diff(a, b))
    slopes = [math.log2(gaps[i] / gaps[i + 1]) for i in range(2)]
    assert all(1.7 <= s <= 2.3 for s in slopes), slopes


# --- Markov-preserving stage noise (docs/algorithms.md, SEEDS) --------------------------


def _expected_cov(mt, sig_i, stage_sigmas, fractions, h, eta, prediction, s_noise):
    """Covariance of the noise at the stages (and the end) of one step, from the
    continuous process: an OU process in data prediction (decay e^{-eta dlambda} per
    unit of sigma), plain Brownian motion in s^2 in noise prediction (§1.4)."""
    n = len(stage_sigmas)
    cov = [[0.0] * n for _ in range(n)]
    for p in range(n):
        for q in range(p, n):
            sp, sq = stage_sigmas[p], stage_sigmas[q]
            if prediction == "data":
                c = sp * sq * math.exp(-eta * (fractions[q] - fractions[p]) * h) * (
                    -math.expm1(-2 * eta * fractions[p] * h))
            else:
                vi, vp = mt.ve_sigma(sig_i), mt.ve_sigma(sp)
                c = mt.alpha(sp) * mt.alpha(sq) * eta * (vi * vi - vp * vp)
            cov[p][q] = cov[q][p] = c * s_noise**2
    return cov


def _cov_from_recursion(noise):
    """Covariance implied by N_0 = b_0 xi_0, N_k = a_k N_{k-1} + b_k xi_k."""
    a, b = noise.a, noise.b
    n = len(b)
    cov = [[0.0] * n for _ in range(n)]
    for q in range(n):
        for p in range(q + 1):
            if p == q:
                cov[q][q] = (a[q] ** 2 * cov[q - 1][q - 1] if q else 0.0) + b[q] ** 2
            else:
                cov[p][q] = cov[q][p] = a[q] * cov[p][q - 1]
    return cov


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("eta,fractions", [(1.0, (0.5,)), (0.4, (0.3,)), (1.0, (1 / 3, 2 / 3)),
                                           (2.0, (0.2, 0.7)), (1.0, ())])
def test_stage_noise_coefficients_analytic(mt, prediction, eta, fractions):
    sig = [0.8, 0.3] if mt.is_flow else [6.0, 1.5]
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    run = SamplerRun(lambda x, s: x, x, torch.tensor(sig + [0.0], dtype=torch.float64), disable=True,
                     model_type=mt)
    s_noise = 0.7
    step = _Step(run, 0, fractions, eta, prediction, s_noise)
    h = run.lam[1] - run.lam[0]
    pts = list(fractions) + [1.0]
    stage_sig = [mt.sigma_at(run.lam[0] + c * h) for c in pts]
    assert step.sig == pytest.approx(stage_sig, rel=1e-14)
    got = _cov_from_recursion(step.noise)
    want = _expected_cov(mt, sig[0], stage_sig, pts, h, eta, prediction, s_noise)
    for p in range(len(pts)):
        for q in range(len(pts)):
            assert got[p][q] == pytest.approx(want[p][q], rel=1e-12, abs=1e-15), (p, q)
    # the noise sampler is asked for the consecutive sub-intervals
    ends = [sig[0]] + stage_sig
    bounds = [float(v) for pair in step.noise.bounds for v in pair]
    assert bounds == pytest.approx([v for pair in zip(ends[:-1], ends[1:]) for v in pair], rel=1e-14)
    if prediction == "data" and eta == 1.0 and len(pts) >= 2 and not mt.is_flow:
        # docs/algorithms.md, SEEDS: Var(N_end) = s'^2 (1 - e^{-2h}), Cov(N_a, N_end) = s'^2 (1 - e^{-2 c h})
        s1 = sig[1]
        assert got[-1][-1] == pytest.approx(s_noise**2 * s1**2 * -math.expm1(-2 * h), rel=1e-12)
        assert got[0][-1] == pytest.approx(s_noise**2 * s1**2 * -math.expm1(-2 * pts[0] * h), rel=1e-12)


class _Recorder:
    """Model returning D = 0 (data prediction) or D = x / alpha (eps = 0, noise prediction),
    so that with x = 0 every stage state is exactly the stage noise; records the states."""

    def __init__(self, mt, prediction):
        self.mt, self.prediction, self.seen = mt, prediction, []
        self.seeds_model_type = mt

    def __call__(self, x, sigma, **kw):
        self.seen.append(x.clone())
        if self.prediction == "data":
            return torch.zeros_like(x)
        return x / self.mt.alpha(float(sigma.reshape(-1)[0]))


@pytest.mark.parametrize("order,kw", [(2, dict(r=0.5)), (3, dict(r1=0.25, r2=0.6))])
@pytest.mark.parametrize("mt,prediction", [(VE, "data"), (FLOW, "data"), (VE, "noise")],
                         ids=["ve-data", "flow-data", "ve-noise"])
def test_stage_noise_empirical_covariance(order, kw, mt, prediction):
    """The sampled stage noises have the covariances of the continuous process (§1.3)."""
    sig = [0.7, 0.25] if mt.is_flow else [5.0, 1.2]
    eta = 0.8
    model = _Recorder(mt, prediction)
    x = torch.zeros(6, 1, 64, 64, dtype=torch.float64)
    out = SEEDS[order](model, x, torch.tensor(sig, dtype=torch.float64), eta=eta,
                       prediction=prediction, extra_args={"seed": 11}, disable=True, **kw)
    states = model.seen[1:] + [out]  # seen[0] is x_i = 0
    assert len(states) == order
    fr = [kw["r"]] if order == 2 else [kw["r1"], kw["r2"]]
    lam = [mt.half_log_snr(s) for s in sig]
    h = lam[1] - lam[0]
    pts = fr + [1.0]
    stage_sig = [mt.sigma_at(lam[0] + c * h) for c in pts]
    want = _expected_cov(mt, sig[0], stage_sig, pts, h, eta, prediction, 1.0)
    n = x.numel()
    flat = [s.reshape(-1) for s in states]
    for p in range(order):
        assert abs(flat[p].mean().item()) <= 5 * math.sqrt(want[p][p] / n)
        for q in range(p, order):
            emp = (flat[p] * flat[q]).mean().item()
            se = math.sqrt((want[p][p] * want[q][q] + want[p][q] ** 2) / n)
            assert abs(emp - want[p][q]) <= 5 * se, (p, q, emp, want[p][q])


@pytest.mark.parametrize("order", [1, 2, 3])
def test_noise_sampler_called_on_sub_intervals(analytic, order):
    """Stage noises come from the injected sampler, one draw per sub-interval
    (sigma_i, sigma_a), (sigma_a, sigma_b), (sigma_b, sigma_{i+1}), as CPU float64 scalars."""
    model = analytic("edm")
    sigmas = torch.tensor([10.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    calls = []

    def ns(a, b):
        assert a.dtype == torch.float64 and a.device.type == "cpu" and a.ndim == 0
        calls.extend([float(a), float(b)])
        return torch.zeros(2, 3, 8, 8, dtype=torch.float64)

    x = model.prior_sample(2, 10.0, torch.Generator().manual_seed(5))
    SEEDS[order](model, x, sigmas, noise_sampler=ns, disable=True)
    cs = {1: [], 2: [0.5], 3: [1 / 3, 2 / 3]}[order]
    expected = []
    for s0, s1 in [(10.0, 2.0), (2.0, 0.5)]:  # no noise on the final denoising step
        pts = [s0] + [s0 ** (1 - c) * s1**c for c in cs] + [s1]
        expected += [v for pair in zip(pts[:-1], pts[1:]) for v in pair]
    assert calls == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_eta0_draws_no_noise_and_ignores_seed(edm_case, order):
    model, x, sigmas = edm_case(6)
    state = torch.get_rng_state()
    a = SEEDS[order](model, x, sigmas, eta=0.0, noise_sampler=no_noise, extra_args={"seed": 1}, disable=True)
    b = SEEDS[order](model, x, sigmas, eta=0.0, extra_args={"seed": 2}, disable=True)
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_s_noise_zero_equals_injected_zero_noise(edm_case, order):
    model, x, sigmas = edm_case(7)
    a = SEEDS[order](model, x, sigmas, s_noise=0.0, extra_args={"seed": 3}, disable=True)
    b = SEEDS[order](model, x, sigmas, noise_sampler=lambda s, t: torch.zeros_like(x), disable=True)
    c = SEEDS[order](model, x, sigmas, extra_args={"seed": 3}, disable=True)
    assert _max_diff(a, b) <= 1e-12
    assert _max_diff(a, c) > 1e-3


def test_stage_fractions_out_of_order_raise_before_any_model_call(analytic):
    """r1 < r2 is the one rule no single Param states (ranges and choices: test_robustness)."""
    model = analytic("edm")
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="r1 < r2"):
        sample_seeds_3(model, x, edm_sigmas(4, 0.01, 10.0), disable=True, r1=0.6, r2=0.4)
    assert model.calls == 0
