"""Noise machinery: per-sample seeded Gaussian streams, the Brownian path, injected samplers."""

from __future__ import annotations

import math

import pytest
import torch

from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.noise import BrownianNoise, GaussianNoise, batch_seeds, make_noise_sampler, mix_seed
from seeds_samplers.samplers.schedules import edm_sigmas
from seeds_samplers.samplers.seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLERS = {
    "seeds_1": (sample_seeds_1, 1),
    "seeds_2": (sample_seeds_2, 2),
    "seeds_3": (sample_seeds_3, 3),
    "er_sde": (sample_er_sde, 1),
}
F64 = torch.float64


def _t(v):
    return torch.tensor(v, dtype=F64)


def _corr(a, b):
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


# --- seeds ----------------------------------------------------------------------------


def test_batch_seeds_are_consecutive_and_draw_a_seed_only_when_missing():
    assert batch_seeds(3, 41) == [41, 42, 43]
    state = torch.get_rng_state()
    batch_seeds(2, 0)
    assert torch.equal(state, torch.get_rng_state())
    drawn = batch_seeds(2, None)
    assert drawn[1] == drawn[0] + 1
    assert not torch.equal(state, torch.get_rng_state())


def test_mix_seed_is_a_63_bit_hash():
    values = {mix_seed(s, salt) for s in range(200) for salt in (1, 2)}
    assert len(values) == 400
    assert all(0 <= v < 2**63 for v in values)
    assert mix_seed(5, 1) == mix_seed(5, 1)


def test_gaussian_noise_is_per_sample():
    x = torch.zeros(3, 2, 16, 16, dtype=F64)
    batch = GaussianNoise(x, [100, 101, 102])
    singles = [GaussianNoise(x[:1], [100 + b]) for b in range(3)]
    for _ in range(3):
        got = batch()
        for b in range(3):
            assert torch.equal(got[b:b + 1], singles[b]())


@pytest.mark.parametrize("seed", [0, 1, 1234, 2**40 + 7])
def test_gaussian_noise_is_not_the_hosts_initial_noise_stream(seed):
    """Hosts draw the initial latent from torch.manual_seed(seed) (per image: seed + b);
    reusing that stream would correlate the injected noise with the initial noise."""
    shape = (2, 4, 32, 32)
    x = torch.zeros(shape)
    ours = GaussianNoise(x, batch_seeds(2, seed))
    draws = [ours() for _ in range(3)]
    torch.manual_seed(seed)
    host = torch.randn(shape)
    per_image = [torch.randn(shape[1:], generator=torch.Generator().manual_seed(seed + b)) for b in range(2)]
    bound = 5 / math.sqrt(host[0].numel())
    for d in draws:
        for b in range(2):
            assert abs(_corr(d[b], host[b])) < bound
            assert abs(_corr(d[b], host[0])) < bound
            assert abs(_corr(d[b], per_image[b])) < bound


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_noise_dtype_follows_the_latent(dtype):
    x = torch.zeros(2, 3, 4, 4, dtype=dtype)
    for ns in (GaussianNoise(x, [1, 2]), BrownianNoise(x, [1, 2])):
        out = ns(_t(2.0), _t(1.0))
        assert out.dtype == dtype and out.shape == x.shape and bool(torch.isfinite(out).all())


# --- samplers: seeding, batch independence, injected samplers ------------------------------


@pytest.mark.parametrize("noise_type", ["gaussian", "brownian"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_result_does_not_depend_on_the_batch(analytic, name, noise_type):
    """Sample b of a batch run with seed s equals a batch-of-1 run with seed s + b."""
    fn, _ = SAMPLERS[name]
    model = analytic("edm")
    sigmas = edm_sigmas(6, 0.01, 20.0)
    x = model.prior_sample(3, 20.0, torch.Generator().manual_seed(0))
    batch = fn(model, x, sigmas, extra_args={"seed": 500}, noise_type=noise_type, disable=True)
    for b in range(3):
        single = fn(model, x[b:b + 1], sigmas, extra_args={"seed": 500 + b}, noise_type=noise_type, disable=True)
        assert (batch[b:b + 1] - single).abs().max().item() <= 1e-12
    other = fn(model, x, sigmas, extra_args={"seed": 501}, noise_type=noise_type, disable=True)
    assert (other - batch).abs().max().item() > 1e-3
    again = fn(model, x, sigmas, extra_args={"seed": 500}, noise_type=noise_type, disable=True)
    assert torch.equal(again, batch)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_injected_noise_sampler_is_honoured(analytic, name):
    fn, stages = SAMPLERS[name]
    model = analytic("edm")
    sigmas = edm_sigmas(5, 0.01, 20.0)  # 5 steps, the last one to 0
    x = model.prior_sample(2, 20.0, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(9)
    calls = []

    def ns(sigma, sigma_next):
        calls.append((float(sigma), float(sigma_next)))
        return torch.randn(x.shape, generator=g, dtype=F64)

    out = fn(model, x, sigmas, noise_sampler=ns, extra_args={"seed": 3}, disable=True)
    assert len(calls) == stages * 4
    assert all(a > b > 0 for a, b in calls)
    seeded = fn(model, x, sigmas, extra_args={"seed": 3}, disable=True)
    assert (out - seeded).abs().max().item() > 1e-3
    zero = fn(model, x, sigmas, noise_sampler=lambda a, b: torch.zeros_like(x), disable=True)
    quiet = fn(model, x, sigmas, s_noise=0.0, disable=True)
    assert (zero - quiet).abs().max().item() <= 1e-12


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_k_diffusion_brownian_tree_sampler_works_as_host_sampler(analytic, name):
    from k_diffusion.sampling import BrownianTreeNoiseSampler

    fn, _ = SAMPLERS[name]
    model = analytic("edm")
    sigmas = edm_sigmas(6, 0.01, 20.0)
    x = model.prior_sample(2, 20.0, torch.Generator().manual_seed(2))
    outs = [fn(model, x, sigmas, noise_sampler=BrownianTreeNoiseSampler(x, 0.01, 20.0, seed=5), disable=True)
            for _ in range(2)]
    assert torch.equal(outs[0], outs[1]) and bool(torch.isfinite(outs[0]).all())
    quiet = fn(model, x, sigmas, s_noise=0.0, disable=True)
    assert (outs[0] - quiet).abs().max().item() > 1e-3


def test_make_noise_sampler_prefers_the_injected_one():
    x = torch.zeros(2, 3)
    mine = lambda a, b: torch.ones_like(x)  # noqa: E731
    assert make_noise_sampler(x, {"seed": 1}, mine, "gaussian") is mine
    assert isinstance(make_noise_sampler(x, {"seed": 1}, None, "gaussian"), GaussianNoise)
    assert isinstance(make_noise_sampler(x, {"seed": 1}, None, "brownian"), BrownianNoise)
    with pytest.raises(ValueError, match="noise_type"):
        make_noise_sampler(x, {}, None, "pink")


# --- Brownian noise ----------------------------------------------------------------------

LEAF = (BrownianNoise.U_MAX - BrownianNoise.U_MIN) / 2**24
INTERVALS = [
    (80.0, 20.0),  # a typical large step
    (1.0, 0.99),
    (0.5, 0.5 * math.exp(-3e-4)),  # a few hundred leaves
    (0.3, 0.3 * math.exp(-3.3 * LEAF)),  # a few leaves
    (0.2, 0.2 * math.exp(-0.3 * LEAF)),  # shorter than a leaf
    (2e-7, 5e-8),  # crosses the lower end of the tree
    (1e-8, 4e-9),  # below it
    (3e5, 1e5),  # above it
    (1e6, 0.002),  # across everything
]


@pytest.fixture(scope="module")
def big():
    return torch.zeros(2, 1, 150, 150, dtype=F64)


@pytest.mark.parametrize("a,b", INTERVALS)
def test_brownian_increments_are_unit_normals(big, a, b):
    out = BrownianNoise(big, [3, 4])(_t(a), _t(b))
    n = out.numel()
    assert abs(out.mean().item()) <= 5 / math.sqrt(n)
    assert out.var().item() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    # the fourth moment of a normal is 3 (a sanity check of Gaussianity)
    assert (out**4).mean().item() == pytest.approx(3.0, abs=5 * math.sqrt(96 / n))


def test_brownian_disjoint_increments_are_independent(big):
    """Consecutive intervals of all sizes (shared endpoints) are uncorrelated."""
    edges = [50.0, 10.0, 3.0, 2.9, 2.9 * math.exp(-2e-4), 2.9 * math.exp(-2.5e-4),
             2.9 * math.exp(-2.5e-4 - 0.4 * LEAF), 1.0, 1e-7, 1e-9]
    ns = BrownianNoise(big, [7, 8])
    incs = [ns(_t(a), _t(b)) for a, b in zip(edges[:-1], edges[1:])]
    bound = 5 / math.sqrt(big.numel())
    for i in range(len(incs)):
        for j in range(i + 1, len(incs)):
            assert abs(_corr(incs[i], incs[j])) < bound, (i, j)


def test_brownian_path_is_additive_and_independent_of_the_query_history():
    """W is one path: the increment over [a, c] is the sum of those over [a, b] and [b, c],
    whichever sampler instance (query history) computes it."""
    x = torch.zeros(2, 3, 8, 8, dtype=F64)
    pts = [70.0, 13.0, 2.5, 2.49, 0.4, 0.03, 0.0021]
    fine = BrownianNoise(x, [11, 12])
    w = [torch.zeros_like(x)]
    for a, b in zip(pts[:-1], pts[1:]):
        w.append(w[-1] + fine(_t(a), _t(b)) * math.sqrt(math.log(a / b)))
    coarse = BrownianNoise(x, [11, 12])
    for i, j in [(0, 6), (1, 4), (2, 3), (3, 6)]:
        whole = coarse(_t(pts[i]), _t(pts[j])) * math.sqrt(math.log(pts[i] / pts[j]))
        tol = 1e-4 * max(1.0, whole.abs().max().item())  # end points snap to leaves of 1.7e-6
        assert (whole - (w[j] - w[i])).abs().max().item() <= tol


def test_brownian_same_seed_same_path_other_seed_other_path():
    x = torch.zeros(1, 2, 8, 8, dtype=F64)
    a = BrownianNoise(x, [5])(_t(3.0), _t(1.0))
    assert torch.equal(a, BrownianNoise(x, [5])(_t(3.0), _t(1.0)))
    assert abs(_corr(a, BrownianNoise(x, [6])(_t(3.0), _t(1.0)))) < 0.5


def test_brownian_noise_is_batch_independent():
    x3 = torch.zeros(3, 2, 8, 8, dtype=F64)
    batch = BrownianNoise(x3, [20, 21, 22])
    singles = [BrownianNoise(x3[:1], [20 + b]) for b in range(3)]
    for a, b in [(10.0, 4.0), (4.0, 3.99), (3.99, 0.01)]:
        got = batch(_t(a), _t(b))
        for k in range(3):
            assert torch.equal(got[k:k + 1], singles[k](_t(a), _t(b)))


def test_brownian_rejects_empty_interval():
    with pytest.raises(ValueError):
        BrownianNoise(torch.zeros(1, 2), [1])(_t(1.0), _t(1.0))


def test_brownian_step_to_sigma_zero_reads_the_tree_s_bottom():
    """A host's last step to sigma = 0 reads the path down to the tree's lowest point (the
    same increment as to that sigma), and from below that point gets a unit normal; a
    negative or NaN sigma is refused by name."""
    x = torch.zeros(2000, 1, 4, 4, dtype=F64)
    bottom = math.exp(BrownianNoise.U_MIN)
    to_zero = BrownianNoise(x, list(range(2000)))(_t(0.03), _t(0.0))
    assert torch.allclose(to_zero, BrownianNoise(x, list(range(2000)))(_t(0.03), _t(bottom)))
    assert abs(float(to_zero.mean())) < 0.02 and abs(float(to_zero.std()) - 1) < 0.02
    below = BrownianNoise(x, list(range(2000)))(_t(1e-9), _t(0.0))
    assert torch.isfinite(below).all() and abs(float(below.std()) - 1) < 0.02
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="sigmas >= 0"):
            BrownianNoise(x, [1])(_t(1.0), _t(bad))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_brownian_result_changes_little_with_the_step_count(analytic, name):
    """Same seed, 30 vs 40 steps: with Brownian noise the images stay close; with
    independent noise (another seed) they are unrelated, and the per-step Gaussian stream
    (the same seed) moves them much more."""
    fn, _ = SAMPLERS[name]
    model = analytic("edm")
    x = model.prior_sample(24, 80.0, torch.Generator().manual_seed(3))

    def run(n, seed, noise_type):
        return fn(model, x, edm_sigmas(n, 0.002, 80.0), extra_args={"seed": seed}, noise_type=noise_type,
                  disable=True)

    def median_dist(a, b):
        return (a - b).flatten(1).pow(2).mean(1).sqrt().median().item()

    b30 = run(30, 3, "brownian")
    brown = median_dist(b30, run(40, 3, "brownian"))
    indep = median_dist(b30, run(30, 4, "brownian"))
    gauss = median_dist(run(30, 3, "gaussian"), run(40, 3, "gaussian"))
    assert brown < 0.1 * indep
    assert brown < 0.5 * gauss
