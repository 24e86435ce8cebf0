"""The guided tables' limit yardstick (bench/limits.py): the ODE limit against the closed-form
flow of a Gaussian, the SDE limit's law against the exact one, which contenders share a
limit (checked against the registry's settings), and the cache keys."""

import hashlib
import math

import pytest
import torch

from seeds_samplers.bench import decide
from seeds_samplers.bench.compare import InterpolatedPathNoise, PathNoise, kdiffusion, ours
from seeds_samplers.bench.comfy import COMFY_SAMPLERS
from seeds_samplers.bench.contenders import QUALITY_BASELINES, menu_contenders
from seeds_samplers.bench.gmm import GaussianMixture
from seeds_samplers.bench.limits import FLOW_ODE_STEPS, FLOW_SDE, FLOW_SHARED_PATH, LIMIT_CALLS, LIMIT_SOLVER, ODE_STEPS, PATH_CALLS, \
    PATH_SPACING, SHARED_PROCESS, Yardstick, path_error, process_of
from seeds_samplers.bench.models import _gmm_model, build_model
from seeds_samplers.bench.grid import mean_sd
from seeds_samplers.bench.report import fmt_mean_sd
from seeds_samplers.samplers.cfg_pp import menu_entries
from seeds_samplers.samplers.registry import SAMPLERS

MU, S = 0.3, 0.5  # one Gaussian N(MU, S^2 I) on 1x8x8 images: its flow and its law are known exactly


def gaussian_model(flow: bool = False):
    """N(MU, S^2 I) on 1x8x8 images as an SD-like discrete model, or as a flow model."""
    mix = GaussianMixture(torch.full((1, 1, 8, 8), MU, dtype=torch.float64), [S], [1.0])
    if flow:
        return _gmm_model("photo8-flow", "one Gaussian, flow", mix, "flow")
    return _gmm_model("photo8", "one Gaussian", mix, "vp_discrete")


@pytest.fixture()
def gaussian():
    return gaussian_model()


def _yardstick(model, tmp_path):
    def generate(cs, nfe, seed, n, sigmas=None, noise=None):
        return decide._generate(model, cs, nfe, seed, "karras", n, noise or "gaussian", sigmas)

    def key(**fields) -> str:
        return hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()

    return Yardstick(model, "karras", generate, key, tmp_path, lambda images: images.flatten(1).to(torch.float64))


def _ends(model):
    sig = decide.schedule_for(model.denoiser, 10, "karras")
    return float(sig[0]), float(sig[-2])


def test_ode_limit_is_the_closed_form_flow(gaussian, tmp_path):
    """Under x = x0 + sigma eps a Gaussian's probability-flow ODE scales x - MU by
    sqrt(S^2 + sigma^2); the limit ends with the denoiser's call at sigma_min."""
    yard = _yardstick(gaussian, tmp_path)
    smax, smin = _ends(gaussian)
    limit = yard.ode_limit(0, 20, smax, smin)
    x = gaussian.prior(20, 0).to(torch.float64)
    at_min = MU + (x - MU) * math.sqrt(S ** 2 + smin ** 2) / math.sqrt(S ** 2 + smax ** 2)
    exact = MU + S ** 2 / (S ** 2 + smin ** 2) * (at_min - MU)
    err = path_error(limit, exact)
    assert err < 0.1  # x 10^3: an RMS below 1e-4, against O(1) pixels
    # the cache returns the same limit without solving again; a solver's error shrinks with its calls
    calls = gaussian.calls
    assert torch.equal(yard.ode_limit(0, 20, smax, smin), limit) and gaussian.calls == calls
    deis = ours("deis")
    errors = [yard.score(deis, 0, nfe, decide._generate(gaussian, [deis], nfe, 0, "karras", 20)[0][0])
              for nfe in (3, 10)]
    assert errors[1] < errors[0] / 4 and errors[1] > 10 * err
    # the floor compares the limit with its half-step solve: on a smooth flow RK4's fourth
    # order makes it about 15 times the limit's own error
    floor = yard.floor("deterministic", 0, 20, 10, deis, [0, 1])
    assert 8 * err < floor < 32 * err and floor < errors[1]
    assert yard.sample_calls == 20 * (4 * ODE_STEPS + 1) + 20 * (4 * ODE_STEPS // 2 + 1)


def test_sde_limit_has_the_exact_law_and_is_shared(gaussian, tmp_path):
    yard = _yardstick(gaussian, tmp_path)
    seeds1, seeds2 = ours("seeds_1"), next(c for c in menu_contenders() if c.label == "SEEDS-2")
    shared = yard.sde_limit(seeds1, 0, 400)
    # the limit draws its own latents and noise: not the table's seed 0
    assert not torch.allclose(shared, decide._generate(gaussian, [seeds1], 10, 0, "karras", 400)[0][0])
    flat = shared.flatten(1)
    n = flat.numel()
    assert abs(float(flat.mean()) - MU) < 4 * S / math.sqrt(n)
    assert abs(float(flat.std()) - S) < 4 * S / math.sqrt(2 * n)
    # every shared contender reads the same limit; a noise window is a process of its own
    assert torch.equal(yard.sde_limit(ours("er_sde"), 0, 400), shared)
    assert process_of(seeds2).startswith("own:") and not torch.equal(yard.sde_limit(seeds2, 0, 400), shared)
    # the score is the KID to the limit: an exact draw scores near the floor, a biased one far above
    exact, _ = gaussian_sample(gaussian, 400)
    assert yard.kid(exact, shared) < yard.kid(exact + 0.2, shared) / 10


def gaussian_sample(model, n):
    mix = model.denoiser.mixture
    x, y = mix.sample(n, torch.Generator().manual_seed(99))
    return x.to(torch.float32), y


def test_shared_process_matches_the_registry():
    """A shared contender solves the full-noise reverse SDE with no noise window: its menu
    settings (registry defaults plus the entry's own) say so."""
    menu = {c.label: c for c in menu_contenders()}
    by_title = {spec.title: spec for spec in SAMPLERS.values()}
    for label, source in SHARED_PROCESS:
        if source == "ours":
            c = menu[label]
            spec = by_title.get(label) or by_title[label.rsplit(" ", 1)[0]]
            settings = {p.name: p.default for p in spec.params} | c.params
            assert settings.get("eta", 1.0) == 1.0, label
            assert settings.get("noise_start", 0.0) == 0.0 and settings.get("noise_end", 1.0) == 1.0, label
            assert settings.get("noise_scale_function", "original_sde") == "original_sde", label
            assert c.stochastic and process_of(c) == "sde"
        elif source == "k-diffusion":
            assert label in QUALITY_BASELINES and process_of(kdiffusion(label)) == "sde"
        else:
            assert source == "ComfyUI" and COMFY_SAMPLERS[label][1]
    assert LIMIT_SOLVER in SHARED_PROCESS
    # the deterministic entries share the ODE; windows and other noise functions do not share
    assert {process_of(c) for c in menu_contenders() if not c.stochastic} == {"ode"}
    assert ("SEEDS-2", "ours") not in SHARED_PROCESS and ("sa_solver", "ComfyUI") not in SHARED_PROCESS


def test_cache_key_records_the_yardstick(gaussian):
    model = decide.kid_model("digits-cfg3")
    c = ours("deis")
    plain, fields = decide._key(model, "karras", 0, c, 10, 500)
    assert "yardstick" not in fields  # the KID-to-data results cached before keep their keys
    limit, fields = decide._key(model, "karras", 0, c, 10, 500, dict(name="limit"))
    assert limit != plain and fields["yardstick"] == dict(name="limit")


def test_limit_keys_follow_the_code_each_limit_runs(monkeypatch):
    """An ODE limit runs the model-type maps, not a solver: a change to a solver of ours keeps
    its cached limits; a change to samplers/model_types.py or to a stochastic limit's own
    solver recomputes them."""
    _, yard = decide.limit_model(decide.kid_model("digits-eps"), "deterministic", "karras")
    ode = dict(kind="ode", seed=0, samples=500, count=500, steps=ODE_STEPS, sigmas=(14.6, 0.03))
    own = dict(kind="own:x", solver=("SEEDS-2", "ours", "[]"), seed=0, samples=500, calls=LIMIT_CALLS)
    before = yard.key(**ode), yard.key(**own)
    monkeypatch.setattr(decide, "_ours_version", lambda: "another solver")
    monkeypatch.setattr(decide, "_source_version", lambda source: f"another {source}")
    after = yard.key(**ode), yard.key(**own)
    assert after[0] == before[0] and after[1] != before[1]
    monkeypatch.setattr(decide, "_model_types_version", lambda: "other maps")
    assert yard.key(**ode) != before[0]


def test_flow_ode_limit_is_the_closed_form_at_sigma_zero(tmp_path):
    """On a flow model (x = (1 - sigma) x0 + sigma eps) every sampler steps to sigma = 0, so the
    limit is the ODE's x(0) from the samplers' first sigma (just below 1, where lambda = -inf):
    for N(MU, S^2) the flow keeps (x - (1 - sigma) MU) / sqrt((1 - sigma)^2 S^2 + sigma^2)."""
    flow = gaussian_model(flow=True)

    def generate(cs, nfe, seed, n, sigmas=None, noise=None):
        return decide._generate(flow, cs, nfe, seed, "simple", n, noise or "gaussian", sigmas)

    yard = Yardstick(flow, "simple", generate, lambda **f: hashlib.sha1(repr(sorted(f.items())).encode()).hexdigest(),
                     tmp_path, None)
    deis = ours("deis")
    s0, end = yard.ends(10, deis)
    assert end == 0.0 and s0 == flow.model_type.prepare_sigmas(decide.schedule_for(flow.denoiser, 10, "simple"))[0]
    assert 0.99 < s0 < 1.0
    limit = yard.ode_limit(0, 20, s0, end)
    x = flow.prior(20, 0).to(torch.float64)
    exact = MU + S * (x - (1 - s0) * MU) / math.sqrt((1 - s0) ** 2 * S ** 2 + s0 ** 2)
    err = path_error(limit, exact)
    assert err < 0.01  # x 10^3: an RMS below 1e-5 (the path is nearly straight in sigma)
    # the samplers' error shrinks with their calls, far above the limit's own, and so does the
    # floor (the half-step limit's distance)
    errors = [yard.score(deis, 0, nfe, generate([deis], nfe, 0, 20)[0][0]) for nfe in (3, 10)]
    assert errors[1] < errors[0] / 4 and errors[1] > 100 * err
    floor = yard.floor("deterministic", 0, 20, 10, deis, [0, 1])
    assert 0 < floor < errors[1] / 100
    assert yard.sample_calls == 20 * (4 * FLOW_ODE_STEPS + 1) + 20 * (4 * FLOW_ODE_STEPS // 2 + 1)
    with pytest.raises(ValueError, match="finite half-log-SNR"):  # sigma = 1 itself: alpha = 0
        yard.ode_limit(0, 20, 1.0, 0.0)


def test_flow_sde_limit_has_the_flow_model_s_law(tmp_path):
    """On a flow model k-diffusion's SDE samplers, handed the flow sigmas, inject noise by their
    VE formulas and converge to another law than the model's (for N(MU, S^2): mean and spread
    off); the shared limit runs k-diffusion's solver in the VE variables, which has the model's
    law, and k-diffusion's own SDE samplers are their own limits there."""
    flow = gaussian_model(flow=True)

    def generate(cs, nfe, seed, n, sigmas=None, noise=None):
        return decide._generate(flow, cs, nfe, seed, "simple", n, noise or "gaussian", sigmas)

    yard = Yardstick(flow, "simple", generate, lambda **f: hashlib.sha1(repr(sorted(f.items())).encode()).hexdigest(),
                     tmp_path, lambda images: images.flatten(1).to(torch.float64))
    n = 1000
    shared = yard.sde_limit(ours("er_sde"), 0, n).flatten(1)
    assert abs(float(shared.mean()) - MU) < 4 * S / math.sqrt(shared.numel())
    assert abs(float(shared.std()) - S) < 0.05  # 60 calls: within a few per cent of the exact spread
    raw = generate([kdiffusion("dpmpp_2m_sde")], LIMIT_CALLS, 0, n)[0][0].flatten(1)
    assert abs(float(raw.mean()) - MU) > 0.1 and abs(float(raw.std()) - S) > 0.1
    assert process_of(kdiffusion("dpmpp_2m_sde")) == "sde"
    assert process_of(kdiffusion("dpmpp_2m_sde"), flow=True).startswith("own:")
    assert process_of(ours("er_sde"), flow=True) == "sde"
    # a flow model's stochastic scores record the flow handling in their cache key; its
    # deterministic scores, and every score on the other models, keep the keys they had
    assert yard.fields_for(ours("er_sde"))["flow_sde"] == FLOW_SDE
    assert "flow_sde" not in yard.fields_for(ours("deis"))
    assert "flow_sde" not in _yardstick(gaussian_model(), tmp_path).fields_for(ours("er_sde"))


def test_limit_yardstick_takes_each_trained_model_s_own_features():
    """The patches models' stochastic limits compare the patch classifier's features, not the
    digit classifier's; a model that is not a trained one is refused."""
    _, yard = decide.limit_model(decide.kid_model("patches-eps"), "stochastic", "karras")
    assert yard.features.__self__ is decide._metric("patches")
    with pytest.raises(ValueError, match="trained models"):
        decide.limit_model(build_model("photo8"), "deterministic", "karras")
    with pytest.raises(ValueError, match="yardstick"):
        decide.run_table("digits-cfg3", "karras", 10, yardstick="fid")


def test_guided_kid_is_taken_per_requested_digit(gaussian, tmp_path):
    """Samples whose digits land one request off have the limit's mixture of digits, so the KID
    on all samples together cannot see it; the per-digit KID (guided stochastic tables) can."""
    from seeds_samplers.digits.guidance import balanced_labels

    g = torch.Generator().manual_seed(3)
    n = 400
    offsets = torch.arange(n) % 10  # sample i requests digit i % 10, as the guided bench model

    def draw(shift: int) -> torch.Tensor:
        return ((offsets + shift) % 10).to(torch.float32).view(-1, 1, 1, 1) + 0.3 * torch.randn(n, 1, 8, 8, generator=g)

    def features(images: torch.Tensor) -> torch.Tensor:  # entries of order one, like the bench's features
        return images.flatten(1).to(torch.float64) / 5

    limit, right, off = draw(0), draw(0), draw(1)
    plain = Yardstick(gaussian, "karras", None, None, tmp_path, features)
    per_digit = Yardstick(gaussian, "karras", None, None, tmp_path, features, balanced_labels)
    assert abs(plain.kid(off, limit) - plain.kid(right, limit)) < 1.0
    assert per_digit.kid(off, limit) > 1000 and abs(per_digit.kid(right, limit)) < 1.0
    assert per_digit.fields["kid"] == "per requested digit" and "kid" not in plain.fields


def test_a_limit_table_s_cost_counts_its_limits(gaussian):
    """The cost line's "whole cell from an empty cache" includes the limits: per seed the ODE
    limit of every latent (4 calls per RK4 step and the final call) and its half-step check
    on the first ODE_CHECK latents, or one SDE limit per process."""
    rows = [dict(label="DEIS", source="ours", calls=10)]
    t = dict(rows=rows, screened=[], nfe=10, screen_samples=0, samples=100, seeds=[0, 1], model=gaussian,
             yardstick="data", kind="deterministic")
    assert decide._full_cost(t) == 10 * 100 * 2
    t["yardstick"] = "limit"
    assert decide._full_cost(t) == 10 * 100 * 2 + 2 * (100 * (4 * ODE_STEPS + 1) + 50 * (2 * ODE_STEPS + 1))
    t.update(kind="stochastic", rows=[dict(label="ER-SDE-Solver", source="ours", calls=10),
                                      dict(label="sa_solver", source="ComfyUI", calls=10)])
    assert decide._full_cost(t) == 20 * 100 * 2 + 2 * 100 * LIMIT_CALLS * 2  # the shared limit and sa_solver's own


def test_samples_that_are_not_finite_score_inf(gaussian, tmp_path):
    """A diverged solve (NaN or inf samples) scores inf on either yardstick, not NaN: the
    tables then rank it last."""
    yard = _yardstick(gaussian, tmp_path)
    bad = gaussian.prior(20, 0).clone()
    bad[3] = float("nan")
    assert yard.score(ours("deis"), 0, 10, bad) == math.inf
    assert yard.score(ours("seeds_1"), 0, 10, bad) == math.inf


@pytest.mark.parametrize("kind", ["deterministic", "stochastic"])
def test_a_data_table_s_converged_process_is_the_exact_law(kind, gaussian, tmp_path):
    """A table scored by the data reports the model's own score of the converged process from
    each seed's latents: the ODE limit (deterministic), or the shared SDE solved at its limit's
    calls from the rows' own latents and noise seed, not the limit's independent draw
    (stochastic). On a Gaussian that is its exact law, so it scores at the floor of exact
    samples, far below a two-step solve (Euler, Euler ancestral) from the same latents."""
    yard = _yardstick(gaussian, tmp_path)
    if kind == "deterministic":
        conv, coarse_solver = decide.converged_scores(gaussian, yard, 10, [0, 1], 400), kdiffusion("euler")
    else:
        conv, coarse_solver = decide.converged_sde_scores(gaussian, yard, [0, 1], 400), kdiffusion("euler_ancestral")
        own = yard.sde_from_latents(yard.shared, 0, 400)
        assert torch.equal(own, yard.generate([yard.shared], LIMIT_CALLS, 0, 400)[0][0])
        assert not torch.equal(own, yard.sde_limit(yard.shared, 0, 400))
    floor = max(gaussian.floor(400, s) for s in (0, 1))
    for s in (0, 1):
        coarse = gaussian.score(coarse_solver(gaussian.denoiser, gaussian.prior(400, s),
                                              decide.schedule_for(gaussian.denoiser, 2, "karras"), s))
        assert conv[s] < 4 * floor < 0.1 * coarse, (s, conv[s], floor, coarse)


def test_the_converged_ode_line_and_its_cost(gaussian):
    """The table prints the converged ODE's score and our best's paired distance to it, and
    counts its limit in the cell's cost; tables without it print nothing of it."""
    t = dict(rows=[dict(label="DEIS", source="ours", calls=10)], screened=[], nfe=10, screen_samples=0,
             samples=100, seeds=[0, 1], model=gaussian, yardstick="data", kind="deterministic",
             best_ours=dict(label="DEIS"))
    assert decide._converged_lines(t) == []
    t["converged"] = dict(score=(0.5, 0.25), delta=(-0.125, 0.0625))
    (line,) = decide._converged_lines(t)
    assert "**converged ODE**" in line
    assert line.endswith(f"{fmt_mean_sd(0.5, 0.25)}; paired DEIS − it: {fmt_mean_sd(-0.125, 0.0625)}")
    assert decide._full_cost(t) == 10 * 100 * 2 + 2 * 100 * (4 * ODE_STEPS + 1)
    t.update(kind="stochastic", best_ours=dict(label="ER-SDE-Solver"))  # a stochastic table: the converged SDE
    (line,) = decide._converged_lines(t)
    assert "**converged SDE**" in line and f"{LIMIT_CALLS}-call samples" in line
    assert line.endswith(f"{fmt_mean_sd(0.5, 0.25)}; paired ER-SDE-Solver − it: {fmt_mean_sd(-0.125, 0.0625)}")
    assert decide._full_cost(t) == 10 * 100 * 2 + 2 * 100 * LIMIT_CALLS
    # an anchor of another SDE ahead of ours: its own converged process, a line and its cost
    t["rows"].append(dict(label="sa_solver", source="ComfyUI", calls=10, own_converged={0: 3.0, 1: 5.0}))
    _, own = decide._converged_lines(t)
    assert "**own converged SDEs**" in own and own.endswith(f"sa_solver (ComfyUI) {fmt_mean_sd(4.0, 2 ** 0.5)}")
    assert decide._full_cost(t) == 2 * 10 * 100 * 2 + 2 * 2 * 100 * LIMIT_CALLS


def test_the_room_line_counts_the_anchors_the_exact_solve_is_ahead_of(gaussian):
    """A table scored by the data states, per kept anchor of its converged process, the
    converged process minus the anchor (paired) and counts those it is ahead of beyond the
    spread; anchors of another process and our own rows are not counted; the tables without a
    converged process (the limit and path yardsticks) print no such line."""
    seeds = [0, 1, 2]
    conv = {0: 10.0, 1: 12.0, 2: 11.0}

    def row(label, source, values, of_converged=True):
        return dict(label=label, source=source, values=dict(zip(seeds, values)), of_converged=of_converged)

    t = dict(seeds=seeds, kind="stochastic", model=gaussian, rows=[
        row("ER-SDE-Solver", "ours", [9.0, 11.0, 10.5]),
        row("dpmpp_2m_sde", "k-diffusion", [13.0, 15.1, 14.0]),  # 3 above the exact solve: room
        row("dpmpp_2m_sde_heun", "ComfyUI", [9.0, 14.0, 10.0]),  # level with it: no room
        row("sa_solver", "ComfyUI", [30.0, 30.0, 30.0], of_converged=False)])  # another process
    assert decide._room_lines(t) == []  # no converged process on the table
    t["converged"] = dict(values=conv)
    (line,) = decide._room_lines(t)
    assert line.startswith("- **room** (the converged SDE minus each kept anchor of that SDE")
    assert f"{decide.ROOM} 1 of 2 kept anchors of it; " in line
    assert f"dpmpp_2m_sde (k-diffusion) {fmt_mean_sd(*mean_sd([-3.0, -3.1, -3.0]))} ahead" in line
    assert line.endswith(f"dpmpp_2m_sde_heun (ComfyUI) {fmt_mean_sd(*mean_sd([1.0, -2.0, 1.0]))}")
    assert "sa_solver" not in line and "ER-SDE-Solver" not in line
    t["rows"] = t["rows"][:1] + t["rows"][3:]  # no anchor of the process: nothing to say
    assert decide._room_lines(t) == []


def test_a_rewrite_from_the_cache_keeps_the_command_and_cost_of_the_call_that_measured(tmp_path):
    """A call that computed no run of a cell (every run cached: a rewrite for a line added
    since) keeps the command and cost line the page states for that cell (the call that
    measured its numbers); a call that computed runs, or a page without the section, prints
    its own."""
    section, command = "bench-decided-digits-eps-karras-stochastic-nfe10", "python -m seeds_samplers bench --x"
    doc = tmp_path / "benchmark.md"
    doc.write_text(f"<!-- {section}:start -->\n### t\n\nCommand: `{command}` (500 samples per seed).\n\n"
                   f"- cost: 5 runs computed: 11 min\n- settings\n<!-- {section}:end -->\n")
    cached = dict(cost=dict(runs=0), screen_cost=dict(runs=0))
    assert decide._measuring_call(cached, doc, section) == (command, "5 runs computed: 11 min")
    assert decide._measuring_call(dict(cached, cost=dict(runs=2)), doc, section) is None
    assert decide._measuring_call(dict(cached, screen_cost=dict(runs=1)), doc, section) is None
    assert decide._measuring_call(cached, doc, section.replace("nfe10", "nfe20")) is None
    assert decide._measuring_call(cached, None, section) is None


# --- the pathwise SDE yardstick -------------------------------------------------------------------


def test_path_noise_is_one_brownian_path_whatever_the_steps():
    """PathNoise's normalised increments over a fine partition add up (times the square roots
    of the steps in log sigma) to the coarse increment: one path, read at any steps; the same
    seed gives the same paths, another seed and another sample other ones."""
    from seeds_samplers.bench.compare import PathNoise

    x = torch.zeros(4, 1, 8, 8)
    sig = [14.6, 3.0, 0.7, 0.03]
    fine = [PathNoise(x, 5)(a, b) * math.sqrt(math.log(a / b)) for a, b in zip(sig, sig[1:])]
    coarse = PathNoise(x, 5)(sig[0], sig[-1]) * math.sqrt(math.log(sig[0] / sig[-1]))
    assert torch.allclose(sum(fine), coarse, atol=1e-4)
    again = PathNoise(x, 5)(sig[0], sig[1])
    assert torch.equal(again, fine[0] / math.sqrt(math.log(sig[0] / sig[1])))
    assert not torch.allclose(PathNoise(x, 6)(sig[0], sig[1]), again)
    assert not torch.allclose(again[0], again[1])
    z = PathNoise(torch.zeros(2000, 1, 8, 8), 5)(sig[1], sig[2])  # each increment a unit normal
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert torch.isfinite(PathNoise(x, 5)(0.03, 0.0)).all()  # a step to sigma = 0 reads the tree's bottom


def _path_yardstick(model, tmp_path, schedule: str = "karras"):
    def generate(cs, nfe, seed, n, sigmas=None, noise=None):
        return decide._generate(model, cs, nfe, seed, schedule, n, noise or "path", sigmas)

    def key(**fields) -> str:
        return hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()

    return Yardstick(model, schedule, generate, key, tmp_path, lambda images: images.flatten(1).to(torch.float64),
                     pathwise=True)


@pytest.mark.parametrize("flow", [False, True], ids=["vp", "flow"])
def test_the_shared_path_solution_has_no_long_step_of_the_table_s_schedule(flow, tmp_path):
    """The shared process's path solution is solved on karras-spaced sigmas between the end
    points of the table's solve (a flow model: on simple, from sigma 1 to 0): on karras that is
    the table's own schedule at 240 calls (the karras tables' limits are unchanged), a flow
    model's simple tables likewise, and on normal, whose end points are karras's (a flow
    model's: simple's), the limit is theirs. On an SD-type model the table's own normal keeps
    its long last step at any count: the solution on it lands many times farther from a
    960-call one (measured on this Gaussian: 56 against 2.5 x 10^-3 RMS)."""
    model = gaussian_model(flow)
    own = "simple" if flow else "karras"
    mine = _path_yardstick(model, tmp_path, own)
    shared, n = mine.shared, 200
    # a score against another limit is another score: the rule is in every path score's key
    assert mine.fields_for(ours("er_sde"))["spacing"] == PATH_SPACING
    assert torch.equal(mine.limit_sigmas(10, shared), decide.schedule_for(model.denoiser, PATH_CALLS, own))
    yard = _path_yardstick(model, tmp_path, "normal")
    assert torch.equal(yard.limit_sigmas(10, yard.shared), mine.limit_sigmas(10, shared))
    assert torch.equal(yard.path_limit(yard.shared, 0, n, 10), mine.path_limit(shared, 0, n, 10))
    if flow:
        return
    shared = yard.shared
    fine = yard._process(shared, 0, n, 4 * PATH_CALLS, 0, sigmas=yard.limit_sigmas(10, shared, 4 * PATH_CALLS))
    on_table = yard._process(shared, 0, n, PATH_CALLS, 0)  # normal's own spacing at 240 calls
    assert path_error(yard.path_limit(shared, 0, n, 10), fine) < path_error(on_table, fine) / 5
    assert yard.floor("stochastic", 0, n, 10, shared, [0, 1]) < path_error(on_table, fine) / 5


def test_a_path_table_gives_no_verdict_against_another_sde(gaussian, tmp_path):
    """On a path table each row is scored against its own process's solution: a row of another
    SDE (ComfyUI's er_sde, a noise window of ours) is printed without a verdict against our best,
    whatever its distance, and the minimum detectable difference pools only the rows compared;
    rows of the shared SDE keep their verdicts, and the other yardsticks compare every row."""
    yard = _path_yardstick(gaussian, tmp_path)
    er, window, shared = ours("er_sde"), ours("seeds_2"), kdiffusion("dpmpp_2m_sde")
    assert yard.process(er) == yard.process(shared) == "sde" and yard.process(window).startswith("own:")
    mine = dict(label="ER-SDE-Solver", source="ours", process="sde")
    near_own = dict(label="er_sde", source="ComfyUI", process="own:er_sde", d_mean=50.0, d_sd=1.0)
    behind = dict(label="dpmpp_2m_sde", source="k-diffusion", process="sde", d_mean=5.0, d_sd=0.5)
    assert decide._verdict(near_own, mine, 3) == decide.ANOTHER_SDE
    assert decide._verdict(dict(near_own, label="SEEDS-2", source="ours"), mine, 3) == decide.ANOTHER_SDE
    assert decide._verdict(behind, mine, 3) == decide.OURS_BEHIND
    plain = {k: v for k, v in near_own.items() if k != "process"}  # a KID table's rows carry no process
    assert decide._verdict(plain, {k: v for k, v in mine.items() if k != "process"}, 3) == decide.OURS_BEHIND


def test_an_anchor_ahead_through_its_error_is_named_so():
    """On a table scored by the data, an anchor ahead of our best that itself scores below the
    converged process beyond the paired spread keeps "ours behind", with how far below it lies;
    one ahead of ours but not below it (or not beyond the spread), or of another process, gets
    the plain verdict."""
    mine = dict(label="DEIS", source="ours", values={0: 30.0, 1: 20.0, 2: 40.0})
    conv = dict(values={0: 29.0, 1: 18.0, 2: 39.0})

    def row(values):
        d_mean, d_sd = mean_sd([mine["values"][s] - values[s] for s in values])
        return dict(label="deis", source="ComfyUI", values=values, d_mean=d_mean, d_sd=d_sd, of_converged=True)

    below = row({0: 26.0, 1: 15.0, 2: 36.5})  # ahead by 3-4, below the converged by 2.5-3
    verdict = decide._verdict(below, mine, 3, conv)
    assert verdict.startswith(decide.OURS_BEHIND + "; the row ") and verdict.endswith("below the converged ODE")
    assert fmt_mean_sd(*mean_sd([3.0, 3.0, 2.5])) in verdict
    assert decide._verdict(below, mine, 3, conv, "SDE").endswith("below the converged SDE")
    above = row({0: 29.5, 1: 19.0, 2: 39.5})  # ahead of ours, above the converged process
    assert decide._verdict(above, mine, 3, conv) == decide.OURS_BEHIND
    spread = row({0: 26.0, 1: 17.5, 2: 36.5})  # below it on average, not beyond the spread
    assert decide._verdict(spread, mine, 3, conv) == decide.OURS_BEHIND
    assert decide._verdict(below, mine, 3) == decide.OURS_BEHIND  # no converged process on the table
    # a row of another process (sa_solver's noise window) converges elsewhere: the shared
    # process says nothing of it; its own process at the limit's calls does, where measured
    assert decide._verdict(dict(below, of_converged=False), mine, 3, conv, "SDE") == decide.OURS_BEHIND
    own = dict(below, of_converged=False, own_converged=conv["values"])
    verdict = decide._verdict(own, mine, 3, conv, "SDE")
    assert verdict.startswith(decide.OURS_BEHIND + "; the row ") and verdict.endswith("below its own converged SDE")
    assert fmt_mean_sd(*mean_sd([3.0, 3.0, 2.5])) in verdict
    far = dict(own, own_converged={0: 20.0, 1: 10.0, 2: 30.0})  # its own process lies below the row
    assert decide._verdict(far, mine, 3, conv, "SDE") == decide.OURS_BEHIND
    assert decide._verdict(dict(below, d_mean=-4.0), mine, 3, conv) == decide.OURS_AHEAD


@pytest.mark.parametrize("flow", [False, True], ids=["vp", "flow"])
def test_long_steps_at_first_order_stay_nearer_the_path(flow, tmp_path):
    """ER-SDE with ``long_step_ratio`` (steps 5 times longer than the one before, the end of the
    hosts' normal schedule, at first order) lands nearer the path's solution than the same
    solver extrapolating its noisy D history over them (measured: about half as far on this
    Gaussian at 10 calls); on karras, which has no such step, it is the same solver."""
    model = gaussian_model(flow)
    n = 200

    def dist(schedule: str, ratio: float) -> float:
        yard = _path_yardstick(model, tmp_path / schedule, schedule)
        c = ours("er_sde", long_step_ratio=ratio)
        return yard.score(c, 0, 10, decide._generate(model, [c], 10, 0, schedule, n, "path")[0][0])

    assert dist("normal", 2.0) < 0.7 * dist("normal", 0.0)
    assert dist("karras", 2.0) == dist("karras", 0.0)


def test_a_sweep_configuration_keeps_its_entry_s_process_while_its_sde_is_the_entry_s():
    """A sweep varies a menu entry's settings under a label of its own: while the varied settings
    only change how the SDE is solved (order, corrector, long_step_ratio) it is scored against
    the entry's process; once they change the SDE (the noise function, a noise window) it is
    its own process."""
    from seeds_samplers.bench.sweep import sweep_grid, sweep_label

    def process(sets):
        (params,) = sweep_grid("er_sde", sets)
        varied = [s.split("=")[0] for s in sets]
        return process_of(ours("er_sde", sweep_label("er_sde", params, varied), **params))

    assert process(["long_step_ratio=2"]) == process(["order=3", "corrector=false"]) == "sde"
    assert process(["noise_scale_function=sde_5"]).startswith("own:")
    assert process(["noise_start=0.2"]).startswith("own:")
    assert process_of(ours("er_sde", "ER-SDE-Solver [an unknown entry's label]", eta=0.5)).startswith("own:")
    # the entry is the contender's own record, not read from its label: any label, a menu variant
    three_m = next(e for e in menu_entries(cfg_pp=False) if e.id == "er_sde_3m")
    assert process_of(ours(three_m, "a label of no entry", order=2, long_step_ratio=2.0)) == "sde"
    assert process_of(ours("seeds_3", "SEEDS-3 [s_noise=0.5]", s_noise=0.5)).startswith("own:")


def test_interpolated_paths_agree_with_the_path_at_their_nodes_and_share_its_increments_by_length():
    """The path known only at the nodes: its increments between nodes are the path's own; inside
    an interval each part gets the interval's increment in proportion to its length in log
    sigma (the conditional mean of a Brownian path given its end values)."""
    x = torch.zeros(3, 1, 4, 4)
    nodes = [0.99, 0.8, 0.5, 0.2, 0.05, 0.0]
    known, path = InterpolatedPathNoise(x, 5, nodes), PathNoise(x, 5)
    for a, b in zip(nodes, nodes[1:]):
        assert torch.allclose(known(a, b), path(a, b), atol=1e-6)

    def increment(a, b):  # W(log b) - W(log a) of the interpolated path
        return known(a, b) * math.sqrt(math.log(a / b))

    fine = [0.8, 0.7, 0.6, 0.5]
    whole = increment(0.8, 0.5)
    for a, b in zip(fine, fine[1:]):
        assert torch.allclose(increment(a, b), whole * (math.log(a / b) / math.log(0.8 / 0.5)), atol=1e-6)
    assert torch.allclose(increment(0.6, 0.3), increment(0.6, 0.5) + increment(0.5, 0.3), atol=1e-6)
    with pytest.raises(ValueError, match="outside the nodes"):
        known(1.5, 1.2)


@pytest.mark.parametrize("flow", [False, True], ids=["vp", "flow"])
def test_between_steps_vanishes_when_the_nodes_are_the_solution_s_sigmas_and_grows_as_they_thin(flow, tmp_path):
    """The shared SDE solved on the paths known only at a solver's sigmas: exactly the path
    solution when those are the solution's own sigmas (8 calls of a 1-call sampler on the
    table's schedule: the solution's spacing), further the fewer they are."""
    model = gaussian_model(flow)
    yard = _path_yardstick(model, tmp_path, "simple" if flow else "karras")
    c, n = ours("er_sde"), 64
    assert yard.between_steps(c, 0, n, 8, calls=8) < 1e-3
    coarse, fine = yard.between_steps(c, 0, n, 4, calls=32), yard.between_steps(c, 0, n, 16, calls=32)
    assert coarse > 1.5 * fine > 0
    with pytest.raises(ValueError, match="shared process"):
        yard.between_steps(ours("seeds_2"), 0, n, 8, calls=8)


def test_a_sweep_s_between_steps_lines_give_each_row_of_the_shared_sde_above_what_the_path_leaves(gaussian, tmp_path):
    """The sweep's --between-steps lines: per NFE, the distance the path between the first
    shared configuration's sigmas leaves, and each row of the shared SDE above it on the same
    seed; a row of another SDE (its own solution) is not subtracted from it."""
    from seeds_samplers.bench.sweep import _between_steps_lines

    yard = _path_yardstick(gaussian, tmp_path)
    mine, other = ours("er_sde"), ours("seeds_2")
    floor = yard.between_steps(mine, 0, 32, 4)  # at the path solution's calls, as the sweep asks
    cells = [dict(nfe=4, label="ER-SDE-Solver", source="ours", process="sde", values={0: floor + 5.0}),
             dict(nfe=4, label="SEEDS-2", source="ours", process="own:SEEDS-2", values={0: floor - 50.0})]
    (line,) = _between_steps_lines(yard, [other, mine], cells, [4], 0, 32)
    assert f": {floor:.3g} from the path solution" in line and "the 5 sigmas of ER-SDE-Solver" in line
    assert "ER-SDE-Solver (ours) +5" in line and "SEEDS-2" not in line.split("above it:")[1]


def test_a_decided_path_table_s_between_steps_line_subtracts_its_floor_from_our_best_and_the_nearest_shared_anchor(
        gaussian, tmp_path):
    """A decided path table's "between the steps" line: the floor on the first seed at our best
    entry's own sigmas, our best row above it, and the nearest anchor of the same SDE above it
    (an anchor of another SDE, nearer its own solution, is not that anchor); no line when our
    best entry solves another process."""
    yard = _path_yardstick(gaussian, tmp_path)
    mine, window = ours("er_sde"), ours("seeds_2")
    contenders = [mine, window, kdiffusion("dpmpp_2m_sde"), kdiffusion("euler_ancestral")]
    floor = yard.between_steps(mine, 0, 32, 4)
    rows = [dict(label="ER-SDE-Solver", source="ours", process="sde", values={0: floor + 5.0}),
            dict(label="SEEDS-2", source="ours", process="own:SEEDS-2", values={0: floor - 50.0}),
            dict(label="dpmpp_2m_sde", source="k-diffusion", process="sde", values={0: floor + 7.0}),
            dict(label="euler_ancestral", source="k-diffusion", process="own:euler", values={0: floor - 9.0})]
    b = decide.between_steps_floor(yard, rows, contenders, rows[0], 0, 32, 4)
    assert b["value"] == floor and b["sigmas"] == 5 and b["ours"] == pytest.approx(5.0)
    assert b["anchor"][:2] == ("dpmpp_2m_sde", "k-diffusion") and b["anchor"][2] == pytest.approx(7.0)
    (line,) = decide._between_lines(dict(between=b))
    assert f": {floor:.3g}; above it on that seed: ER-SDE-Solver (ours) +5" in line and "euler" not in line
    assert decide.between_steps_floor(yard, rows, contenders, rows[1], 0, 32, 4) is None
    assert decide._between_lines(dict(between=None)) == []


def test_path_scores_and_limits_are_keyed_by_the_path_code(gaussian, tmp_path, monkeypatch):
    """A path limit is read from the cache while the code that draws the paths is unchanged,
    and solved again once it changes (a row's key records the same version: a change to the
    Brownian tree alone must not leave stale path scores)."""
    from seeds_samplers.bench import compare, limits

    yard = _path_yardstick(gaussian, tmp_path)
    made = []
    generate = yard.generate
    yard.generate = lambda cs, nfe, seed, n, **kw: made.append(nfe) or generate(cs, nfe, seed, n, **kw)
    first = yard.path_limit(ours("seeds_1"), 0, 8, 10, calls=12)
    assert torch.equal(yard.path_limit(ours("seeds_1"), 0, 8, 10, calls=12), first) and len(made) == 1
    assert yard.fields["noise"] == compare.path_version() and compare.path_version().startswith("path:")

    compare.path_version.cache_clear()
    monkeypatch.setattr(compare.inspect, "getsource", lambda obj: "another tree")
    try:
        changed = compare.path_version()
        monkeypatch.setattr(limits, "path_version", lambda: changed)
        assert changed != yard.fields["noise"]
        yard.path_limit(ours("seeds_1"), 0, 8, 10, calls=12)
        assert len(made) == 2  # solved again under the new key
        assert _path_yardstick(gaussian, tmp_path).fields["noise"] == changed
    finally:
        compare.path_version.cache_clear()


def test_sde_solvers_converge_to_one_solution_per_path(gaussian, tmp_path):
    """Driven by the same Brownian paths, ours and k-diffusion's solvers of the full-noise SDE
    converge per sample to one solution (strong convergence): their pathwise distance to the
    shared limit shrinks with the calls, and at 60 calls it is a small fraction of the distance
    between the solutions on two different paths. A noise window is another process, far from
    it; the floor (the limit against its half-call solve) is below the 60-call distances."""
    yard = _path_yardstick(gaussian, tmp_path)
    n = 200
    shared = yard.path_limit(ours("seeds_1"), 0, n, 20)
    other_path = yard.path_limit(ours("seeds_1"), 1, n, 20)  # seed 1: other latents and paths
    far = path_error(other_path, shared)
    assert yard.unrelated(0, n, [0, 1], 20) == far  # the tables' "unrelated samples" line

    def dist(c, nfe):
        return yard.score(c, 0, nfe, decide._generate(gaussian, [c], nfe, 0, "karras", n, "path")[0][0])

    for c in (ours("er_sde"), ours("seeds_3"), kdiffusion("dpmpp_2m_sde"), kdiffusion("euler_ancestral")):
        d = [dist(c, nfe) for nfe in (6, 20, 60)]
        assert d[0] > d[1] > d[2] and d[2] < far / 10, (c.label, d, far)
    window = next(c for c in menu_contenders() if c.label == "SEEDS-2")
    assert path_error(yard.path_limit(window, 0, n, 20), shared) > 3 * dist(ours("er_sde"), 60)
    floor = yard.floor("stochastic", 0, n, 20, window, [0, 1])
    assert floor < dist(ours("er_sde"), 60)


def test_on_a_flow_model_the_shared_path_solution_reads_the_path_in_the_model_s_sigma(tmp_path):
    """On a flow model the shared limit runs in the VE variables, but its noise sampler is read
    at the model's own sigmas, as every sampler on a flow model reads it: log sigma is not an
    affine function of lambda there, so a path read in the VE sigma drives another Brownian
    motion, and our solvers of the same SDE would converge to another solution (they stayed
    at the unrelated samples' distance whatever the calls). Read alike, they converge to it."""
    yard = _path_yardstick(gaussian_model(flow=True), tmp_path, "simple")
    n = 200
    far = yard.unrelated(0, n, [0, 1], 8)
    for c in (ours("er_sde"), ours("seeds_1")):  # (read in the VE sigma: 287 at 60 calls, far 708)
        d = [yard.score(c, 0, nfe, yard.generate([c], nfe, 0, n)[0][0]) for nfe in (8, 60, PATH_CALLS)]
        assert d[0] > d[1] > d[2] and d[2] < far / 10, (c.label, d, far)
    # the shared process's scores and limits record it in their cache keys (computed before it,
    # they read the path in the VE sigma); another process's do not, nor any eps model's
    assert yard.fields_for(ours("er_sde"))["shared_path"] == FLOW_SHARED_PATH
    assert "shared_path" not in yard.fields_for(kdiffusion("dpmpp_2m_sde"))  # its own process on flow
    assert "shared_path" not in _path_yardstick(gaussian_model(), tmp_path).fields_for(ours("er_sde"))


def test_the_path_yardstick_s_keys_cost_and_kinds(gaussian):
    """Path-scored runs draw other noise than the KID's, so they are cached under another key;
    the cell's cost counts each process's 240-call solution and the shared one's half-call
    solve; deterministic samplers are left to the ODE limit."""
    model = decide.kid_model("digits-eps")
    _, kid = decide.limit_model(model, "stochastic", "karras")
    _, path = decide.limit_model(model, "stochastic", "karras", pathwise=True)
    assert (kid.noise, path.noise) == ("gaussian", "path")
    c = ours("er_sde")
    assert decide._key(model, "karras", 0, c, 10, 500, kid.fields_for(c))[0] != \
        decide._key(model, "karras", 0, c, 10, 500, path.fields_for(c))[0]
    with pytest.raises(ValueError, match="stochastic"):
        decide.scored_model(model, "deterministic", "karras", "path")
    rows = [dict(label="ER-SDE-Solver", source="ours", calls=10), dict(label="sa_solver", source="ComfyUI", calls=10)]
    t = dict(rows=rows, screened=[], nfe=10, screen_samples=0, samples=100, seeds=[0, 1], model=gaussian,
             yardstick="path", kind="stochastic")
    assert decide._full_cost(t) == 20 * 100 * 2 + 2 * 100 * (PATH_CALLS * 2 + PATH_CALLS // 2)
    t["between"] = dict(value=1.0)  # the between-steps solve: one seed
    assert decide._full_cost(t) == 20 * 100 * 2 + 2 * 100 * (PATH_CALLS * 2 + PATH_CALLS // 2) + 100 * PATH_CALLS
    del t["between"]
    assert decide._unrelated_lines(t) == []
    t["unrelated"] = (640.0, 5.0)
    (line,) = decide._unrelated_lines(t)
    assert "**unrelated samples**" in line and line.endswith(fmt_mean_sd(640.0, 5.0))
    assert decide.section_name("digits-eps", "karras", "stochastic", 10, "path").endswith("-nfe10-path")


def test_a_path_sweep_compares_its_best_configuration_with_anchors_of_its_sde_only():
    """A sweep's "best configuration vs best anchor" line on the path yardstick skips an anchor
    of another SDE (k-diffusion's SDE samplers on a flow model, scored against their own
    solution and nearer it), and takes the best anchor of the configuration's own SDE; the
    other yardsticks' cells carry no process and compare every anchor."""
    from seeds_samplers.bench.sweep import _paired_lines

    def cell(label, source, values, process=None):
        out = dict(label=label, source=source, nfe=10, values=dict(enumerate(values)),
                   mean=sum(values) / len(values))
        return out if process is None else dict(out, process=process)

    ours_ = cell("ER-SDE-Solver [x]", "ours", [100.0, 102.0, 101.0], "sde")
    own = cell("dpmpp_2m_sde", "k-diffusion", [60.0, 61.0, 62.0], "own:dpmpp_2m_sde")
    shared = cell("dpmpp_2m_sde", "ComfyUI", [110.0, 113.0, 111.0], "sde")
    (line,) = _paired_lines([ours_, own, shared], [10], 3)
    assert "dpmpp_2m_sde (ComfyUI)" in line and line.endswith("ahead")
    plain = [{k: v for k, v in c.items() if k != "process"} for c in (ours_, own, shared)]
    (line,) = _paired_lines(plain, [10], 3)
    assert "dpmpp_2m_sde (k-diffusion)" in line and line.endswith("behind")


def test_only_anchors_of_another_sde_ahead_of_ours_get_their_own_converged_process():
    """own_converged_scores solves the own process (the anchor itself at the limit's calls,
    from each seed's latents) of exactly the anchor rows that lead ours beyond the spread and
    discretise another SDE: not ours, not a row of the shared SDE, not one level or behind."""
    seeds = (0, 1, 2)
    mine = dict(label="ER-SDE-Solver", source="ours", values={0: 30.0, 1: 20.0, 2: 40.0}, d_mean=None)

    def row(label, source, values, of_converged):
        d_mean, d_sd = mean_sd([mine["values"][s] - values[s] for s in seeds])
        return dict(label=label, source=source, values=values, d_mean=d_mean, d_sd=d_sd, of_converged=of_converged)

    ahead = {0: 26.0, 1: 15.0, 2: 36.5}
    rows = [mine, row("sa_solver", "ComfyUI", ahead, False), row("dpmpp_3m_sde", "k-diffusion", ahead, True),
            row("SEEDS-2", "ours", ahead, False), row("er_sde", "ComfyUI", {0: 29.0, 1: 21.0, 2: 40.5}, False)]
    contenders = [object() for _ in rows]
    solved = []

    class Limit:
        shared = object()

        def sde_from_latents(self, c, seed, samples):
            solved.append((c, seed, samples))
            return torch.full((samples,), float(seed))

    class Model:
        def score(self, x):
            return 100.0 + float(x[0])

    decide.own_converged_scores(Model(), Limit(), rows, contenders, mine, seeds, 7)
    assert solved == [(contenders[1], s, 7) for s in seeds]
    assert rows[1]["own_converged"] == {0: 100.0, 1: 101.0, 2: 102.0}
    assert not any("own_converged" in r for i, r in enumerate(rows) if i != 1)
