"""Distribution of the samples: with the exact denoiser of a Gaussian mixture, starting from
the exact marginal at sigma_max and with enough steps, every stochastic solver must
produce the exact marginal at sigma_min -- per component: mean mu_k and variance
s_k^2 + sigma_min^2 (flow: (1 - sigma) mu_k and (1 - sigma)^2 s_k^2 + sigma^2) -- and the
component weights w_k.

Statistics (samples assigned to their most probable component; the components are
separated by > 9 standard deviations, so the assignment is exact in practice):
  * weights: multinomial chi-square, K - 1 degrees of freedom;
  * means: n_k ||m_k - mu_k||^2 / var_k ~ chi-square with d degrees of freedom;
  * variances: (n_k - 1) d v_k / var_k ~ chi-square with (n_k - 1) d degrees of freedom.
Every statistic must have a p-value above 1e-5 (about 100 statistics in this module: a
family-wise false-alarm rate of 1e-3). The step counts are chosen so that the
discretisation bias is well inside that tolerance: at these counts the smallest p-value
of any run is 6e-3 (about what 9 statistics of unbiased samples give), whereas SEEDS-1
with 400 steps still under-disperses by 4 standard errors. Negative controls check that
the statistics detect a 20 % error in the noise scale and a too-short schedule.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.schedules import logsnr_uniform_sigmas
from seeds_samplers.samplers.seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

N = 2000
SIGMA_MIN = 0.01
P_MIN = 1e-5

SOLVERS = {
    # name: (function, parameters, steps)
    "seeds_1": (sample_seeds_1, {}, 1000),
    "seeds_2": (sample_seeds_2, {}, 100),
    "seeds_2_phi_2": (sample_seeds_2, {"variant": "phi_2"}, 100),
    "seeds_3": (sample_seeds_3, {}, 30),
    "er_sde_3": (sample_er_sde, {}, 30),
    "er_sde_3_original": (sample_er_sde, {"noise_scale_function": "original_sde"}, 40),
}


@pytest.fixture(scope="module")
def mixture(make_mixture):
    # 4 components in 12 dimensions, stds 0.15 .. 0.5, weights 0.4 .. 0.1
    return make_mixture(shape=(3, 2, 2))


class BatchNoise:
    """Independent N(0, I) draws for the whole batch from one generator (the per-sample
    seeded streams are tested in test_noise.py; here speed matters)."""

    def __init__(self, x, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.shape = x.shape

    def __call__(self, sigma, sigma_next):
        return torch.randn(self.shape, generator=self.gen, dtype=torch.float64)


def _schedule(kind, n):
    if kind == "flow":
        s = logsnr_uniform_sigmas(n + 1, SIGMA_MIN, 0.999, model_type="flow")[:-1]
        s[0] = 1.0  # pure noise; the samplers offset it
        return s
    return logsnr_uniform_sigmas(n + 1, SIGMA_MIN, 80.0)[:-1]


def p_values(x, mix, kind):
    """p-values of the statistics in the module docstring (x at sigma_min)."""
    a = 1.0 - SIGMA_MIN if kind == "flow" else 1.0
    x = x.to(torch.float64)
    labels = mix.classify(x / a)
    flat = x.reshape(x.shape[0], -1)
    d, n = mix.dim, x.shape[0]
    counts = torch.bincount(labels, minlength=mix.k).double()
    expected = n * mix.weights
    out = {"weights": float(stats.chi2.sf(((counts - expected) ** 2 / expected).sum().item(), mix.k - 1))}
    for k in range(mix.k):
        sel = flat[labels == k]
        nk = sel.shape[0]
        var = (a * float(mix.stds[k])) ** 2 + SIGMA_MIN**2
        m = sel.mean(0)
        t_mean = nk * ((m - a * mix._flat[k]) ** 2).sum().item() / var
        out[f"mean {k}"] = float(stats.chi2.sf(t_mean, d))
        dof = (nk - 1) * d
        t_var = ((sel - m) ** 2).sum().item() / var
        out[f"var {k}"] = float(2 * min(stats.chi2.cdf(t_var, dof), stats.chi2.sf(t_var, dof)))
    return out


def _sample(mix, kind, name, noise_sampler=True, n_steps=None, n=N, **extra):
    fn, params, steps = SOLVERS[name]
    model = AnalyticDenoiser(mix, kind=kind)
    smax = 1.0 if kind == "flow" else 80.0
    x0 = model.prior_sample(n, smax, torch.Generator().manual_seed(0))
    kw = dict(params, **extra)
    if noise_sampler:
        kw["noise_sampler"] = BatchNoise(x0, 1)
    return fn(model, x0, _schedule(kind, n_steps or steps), stop_at_sigma_min=True, disable=True, **kw)


def test_exact_samples_pass_the_statistics(mixture):
    """The statistics themselves: exact draws from the marginal at sigma_min pass."""
    g = torch.Generator().manual_seed(2)
    for kind in ("ve", "flow"):
        x0, _ = mixture.sample(N, g)
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        x = (1 - SIGMA_MIN) * x0 + SIGMA_MIN * eps if kind == "flow" else x0 + SIGMA_MIN * eps
        assert min(p_values(x, mixture, kind).values()) > P_MIN


@pytest.mark.parametrize("kind", ["ve", "flow"])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_stochastic_solver_samples_the_mixture(mixture, kind, name):
    p = p_values(_sample(mixture, "edm" if kind == "ve" else "flow", name), mixture, kind)
    assert min(p.values()) > P_MIN, p


@pytest.mark.parametrize("kind,name,noise_type", [("ve", "seeds_3", "gaussian"), ("flow", "seeds_3", "brownian"),
                                                  ("ve", "er_sde_3", "brownian"), ("flow", "er_sde_3", "gaussian")])
def test_built_in_noise_samples_the_mixture(mixture, kind, name, noise_type):
    # per-sample seeded noise costs a generator call per image and node: fewer samples
    # for the Brownian tree (less power, the same p-value threshold)
    x = _sample(mixture, "edm" if kind == "ve" else "flow", name, noise_sampler=False,
                n=N if noise_type == "gaussian" else 400, extra_args={"seed": 77}, noise_type=noise_type)
    p = p_values(x, mixture, kind)
    assert min(p.values()) > P_MIN, p


def test_probability_flow_ode_has_the_same_marginals(mixture):
    x = _sample(mixture, "edm", "seeds_3", noise_sampler=False, eta=0.0)
    p = p_values(x, mixture, "ve")
    assert min(p.values()) > P_MIN, p


@pytest.mark.parametrize("kind", ["ve", "flow"])
def test_statistics_detect_a_wrong_noise_scale(mixture, kind):
    """Negative control: 20 % too little noise is far outside the tolerance."""
    x = _sample(mixture, "edm" if kind == "ve" else "flow", "seeds_3", s_noise=0.8)
    p = p_values(x, mixture, kind)
    assert min(v for k, v in p.items() if k.startswith("var")) < 1e-10, p


def test_statistics_detect_too_few_steps(mixture):
    """Negative control: SEEDS-1 with 50 steps under-disperses measurably."""
    x = _sample(mixture, "edm", "seeds_1", n_steps=50)
    p = p_values(x, mixture, "ve")
    assert min(p.values()) < P_MIN, p
    assert math.isfinite(sum(p.values()))
