"""CFG++ as one option of the step loop (samplers/cfg_pp.py; docs/algorithms.md, CFG++).

* the exact reduction: with no unconditional branch, or with cond = uncond, every CFG++ form
  is its base form (to round-off), on VE and flow models, through every step mode;
* first-order steps are CFG++'s DDIM step x' = alpha' D_g + sigma' eps_u (Chung et al. 2024),
  for the exponential (SEEDS-1, ER-SDE-1), Adams-Bashforth (DEIS, iPNDM) and Runge-Kutta
  (rhoRK-DEIS Euler) forms alike;
* a Runge-Kutta step reads each stage's eps at the stage's shifted point;
* the stochastic steps keep the noise's marginal variance exact: for a denoiser constant
  in x, one SDE step from x ~ N(0, sigma^2) lands on N(alpha' D_g, sigma'^2) whatever the
  guidance;
* a missing unconditional prediction is refused, not silently run as plain CFG.
"""

from __future__ import annotations

import math
from typing import Optional

import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture, photo_mixture
from seeds_samplers.samplers import (sample_deis, sample_er_sde, sample_ipndm, sample_seeds_1, sample_seeds_2,
                                     sample_seeds_3)
from seeds_samplers.samplers.cfg_pp import CFG_PP
from seeds_samplers.samplers.registry import SAMPLERS
from seeds_samplers.samplers.schedules import edm_sigmas


class Guided:
    """A CFG model built from two exact mixture denoisers: D_g = D_u + lam (D_c - D_u),
    keeping ``last_uncond`` as hosts hand it over. ``same``: cond = uncond (D_u = D_g
    exactly); ``branch=False``: no unconditional branch (``last_uncond`` None)."""

    def __init__(self, kind: str = "edm", lam: float = 0.7, same: bool = False, branch: bool = True):
        mix = photo_mixture()
        w = torch.zeros(mix.k, dtype=torch.float64) + 0.02
        w[3] = 1.0  # the "class": one component dominates
        self.u = AnalyticDenoiser(mix, kind)
        self.c = AnalyticDenoiser(GaussianMixture(mix.means, mix.stds.tolist(), w.tolist()), kind)
        self.seeds_model_type = self.u.seeds_model_type
        self.lam, self.same, self.branch = lam, same, branch
        self.last_uncond: Optional[torch.Tensor] = None
        self.calls = 0

    def __call__(self, x, sigma, **kw):
        self.calls += 1
        du = self.u(x, sigma)
        dg = du if self.same else du + self.lam * (self.c(x, sigma) - du)
        self.last_uncond = du.clone() if self.branch else None
        return dg


FORMS = {
    "seeds_1": (sample_seeds_1, {}),
    "seeds_1_ode": (sample_seeds_1, {"eta": 0.0}),
    "seeds_2": (sample_seeds_2, {}),
    "seeds_2_noise": (sample_seeds_2, {"prediction": "noise", "eta": 0.0}),
    "seeds_3": (sample_seeds_3, {"noise_start": 0.3}),
    "er_sde": (sample_er_sde, {"noise_start": 0.3}),
    "er_sde_ode": (sample_er_sde, {"eta": 0.0}),
    "er_sde_corrector": (sample_er_sde, {"noise_start": 0.3, "corrector": True, "expansion": "midpoint"}),
    "deis_tab": (sample_deis, {}),
    "deis_logrho": (sample_deis, {"variant": "logrho"}),
    "deis_rhork": (sample_deis, {"variant": "rhork", "order": 2}),
    "ipndm": (sample_ipndm, {"order": 3}),
    "ipndm_v": (sample_ipndm, {"order": 3, "variant": "variable"}),
}


def _schedule(model, n=8):
    mt = model.seeds_model_type
    if mt.is_flow:
        return torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)
    return edm_sigmas(n, mt.sigma_min, mt.sigma_max)


def _start(model, sig, seed=0):
    g = torch.Generator().manual_seed(seed)
    return model.u.prior_sample(4, float(sig[0]), g)


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("name", sorted(FORMS))
def test_cfg_pp_without_guidance_is_the_base_form(name, kind):
    fn, kw = FORMS[name]
    for same, branch in ((True, True), (False, False)):
        model = Guided(kind, same=same, branch=branch)
        sig = _schedule(model)
        x = _start(model, sig)
        base = fn(model, x, sig, extra_args={"seed": 3}, **kw)
        pp = fn(model, x, sig, extra_args={"seed": 3}, cfg_pp=True, **kw)
        assert torch.equal(pp, base), (name, kind, same, branch)
    # and with guidance the option changes the result (it is not a no-op)
    model = Guided(kind)
    base = fn(model, x, sig, extra_args={"seed": 3}, **kw)
    pp = fn(model, x, sig, extra_args={"seed": 3}, cfg_pp=True, **kw)
    assert (pp - base).abs().max() > 1e-5


def _ddim_cfg_pp(model, x, sig):
    """Chung et al.'s DDIM step in x = alpha D + sigma eps: x' = alpha' D_g + sigma' eps_u."""
    mt = model.seeds_model_type
    for i in range(len(sig) - 1):
        s, s1 = float(sig[i]), float(sig[i + 1])
        dg = model(x, torch.tensor(s, dtype=torch.float64))
        du = model.last_uncond
        if s1 == 0.0:
            return dg
        eps_u = (x - mt.alpha(s) * du) / s
        x = mt.alpha(s1) * dg + s1 * eps_u
    return x


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("fn, kw", [
    (sample_seeds_1, {"eta": 0.0}),
    (sample_er_sde, {"order": 1, "eta": 0.0}),
    (sample_deis, {"order": 1, "variant": "rhoab"}),
    (sample_deis, {"order": 1, "variant": "rhork"}),
    (sample_ipndm, {"order": 1}),
])
def test_first_order_cfg_pp_is_the_papers_ddim_step(kind, fn, kw):
    model = Guided(kind)
    sig = _schedule(model, 6)
    if kind == "flow":
        sig = sig.clamp_max(0.98)  # start below sigma = 1 (alpha = 0 there has no eps to carry)
        sig[0] = 0.98
    x = _start(model, sig)
    # sigma_steps off: every step by the solver's own (first-order) formula
    got = fn(model, x, sig, cfg_pp=True, sigma_steps=False, **kw)
    want = _ddim_cfg_pp(model, x.clone(), sig)
    assert torch.allclose(got, want, rtol=0, atol=1e-9), (got - want).abs().max()


def test_runge_kutta_stage_reads_eps_at_its_shifted_point():
    """rhoRK-DEIS order 2 (Heun in sigma), one step, written out by hand."""
    model = Guided("edm")
    sig = torch.tensor([10.0, 4.0], dtype=torch.float64)
    x = _start(model, sig)
    got = sample_deis(model, x, sig, variant="rhork", order=2, cfg_pp=True)
    s0, s1 = 10.0, 4.0
    dg = model(x, torch.tensor(s0)); du = model.last_uncond
    xt = x + (dg - du)
    k0 = (xt - dg) / s0
    x1 = xt + (s1 - s0) * k0
    dg1 = model(x1, torch.tensor(s1)); du1 = model.last_uncond
    k1 = (x1 + (dg1 - du1) - dg1) / s1
    want = xt + (s1 - s0) * 0.5 * (k0 + k1)
    assert torch.allclose(got, want, rtol=0, atol=1e-9)


class Constant:
    """D_u = 0 and D_g = c for every x (the exact case of the marginal-variance claim)."""

    def __init__(self, c: float, kind: str):
        self.c = c
        self.seeds_model_type = AnalyticDenoiser(photo_mixture(), kind).seeds_model_type
        self.last_uncond = None

    def __call__(self, x, sigma, **kw):
        self.last_uncond = torch.zeros_like(x)
        return torch.full_like(x, self.c)


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("fn, kw", [
    (sample_seeds_1, {}), (sample_seeds_2, {}), (sample_seeds_3, {}),
    (sample_er_sde, {"order": 1}), (sample_er_sde, {"order": 1, "noise_scale_function": "original_sde"}),
])
def test_sde_step_keeps_the_marginal_variance(kind, fn, kw):
    """x ~ alpha_0 * 0 + sigma_0 N(0, 1) (the uncond marginal of D_u = 0); one CFG++ SDE
    step to sigma_1 with D_g = c: x' = alpha_1 c + sigma_1 (e^{-h} eps_u + sqrt(1 - e^{-2h}) z)
    has mean alpha_1 c and variance sigma_1^2 exactly."""
    model = Constant(2.0, kind)
    mt = model.seeds_model_type
    s0, s1 = (0.8, 0.5) if kind == "flow" else (3.0, 1.2)
    n = 40000
    x = s0 * torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = torch.tensor([s0, s1], dtype=torch.float64)
    out = fn(model, x, sig, extra_args={"seed": 5}, cfg_pp=True, sigma_steps=False, **kw).flatten()
    mean_se, var_se = s1 / math.sqrt(n), s1 ** 2 * math.sqrt(2.0 / n)
    assert abs(float(out.mean()) - mt.alpha(s1) * 2.0) < 5 * mean_se
    assert abs(float(out.var()) - s1 ** 2) < 5 * var_se


def test_missing_uncond_is_refused():
    u = AnalyticDenoiser(photo_mixture(), "edm")
    sig = edm_sigmas(4, 0.1, 10.0)
    x = u.prior_sample(2, 10.0, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="unconditional"):
        sample_seeds_2(u, x, sig, cfg_pp=True)

    class SkipsAtOne(Guided):
        keep_uncond = False

    with pytest.raises(ValueError, match="keep_uncond"):
        sample_seeds_2(SkipsAtOne(), x, sig, cfg_pp=True)


def test_explicit_source_is_used():
    model = Guided("edm")
    sig = edm_sigmas(5, 0.1, 10.0)
    x = _start(model, sig)

    class Source:
        last_uncond = None

    src = Source()

    def plain(x, sigma, **kw):  # a model without last_uncond; the host glue feeds the source
        d = model(x, sigma)
        src.last_uncond = model.last_uncond
        return d

    plain.seeds_model_type = model.seeds_model_type
    assert torch.equal(sample_ipndm(plain, x, sig, cfg_pp=True, uncond=src),
                       sample_ipndm(model, x, sig, cfg_pp=True))


def test_the_option_is_on_the_solvers_of_the_issue():
    have = sorted(sid for sid, spec in SAMPLERS.items() if CFG_PP in spec.params)
    assert have == ["deis", "er_sde", "ipndm", "seeds_1", "seeds_2", "seeds_3"]


def test_webui_probe_and_source_follow_the_hosts_denoiser():
    """A1111-like denoiser (keeps the uncond, has the CFG++ scale multiplier): listed, and the
    source asks it to keep the uncond and sets the host's scale convention; one without
    (Forge Classic-like) is not listed and refused."""
    import types

    from seeds_samplers.webui.sampler import CFG_PP_SCALE_DIVISOR, HostUncond, exposes_uncond

    class A1111Like:
        def __init__(self, sampler):
            self.cond_scale_miltiplier = 1.0
            self.need_last_noise_uncond = False
            self.last_noise_uncond = None

    class ClassicLike:
        def __init__(self, sampler):
            self.sampler = sampler

    assert exposes_uncond(types.SimpleNamespace(CFGDenoiser=A1111Like))
    assert not exposes_uncond(types.SimpleNamespace(CFGDenoiser=ClassicLike)) and not exposes_uncond(None)
    d = A1111Like(None)
    src = HostUncond(d)
    assert d.need_last_noise_uncond and d.cond_scale_miltiplier == 1.0 / CFG_PP_SCALE_DIVISOR
    d.last_noise_uncond = torch.ones(1)
    assert torch.equal(src.last_uncond, torch.ones(1))
    with pytest.raises(ValueError, match="does not expose"):
        HostUncond(ClassicLike(None))
