"""The sampler contract around the update formulas: input validation before any model call,
dtypes, batch sizes, short and unusual schedules, the callback, the final denoising step
and stop_at_sigma_min -- for every solver in this package's core."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.samplers.deis import sample_deis
from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.ipndm import sample_ipndm
from seeds_samplers.samplers.registry import SAMPLERS as REGISTRY
from seeds_samplers.samplers.registry import Param
from seeds_samplers.samplers.schedules import edm_sigmas
from seeds_samplers.samplers.seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
SAMPLERS = {
    "seeds_1": (sample_seeds_1, 1, {}),
    "seeds_2": (sample_seeds_2, 2, {}),
    "seeds_2_noise": (sample_seeds_2, 2, {"prediction": "noise", "variant": "phi_2"}),
    "seeds_3": (sample_seeds_3, 3, {}),
    "er_sde": (sample_er_sde, 1, {}),
    "er_sde_riemann": (sample_er_sde, 1, {"quadrature": "riemann100", "order": 2}),
    "deis": (sample_deis, 1, {}),
    "deis_rhork": (sample_deis, 3, {"variant": "rhork"}),
    "ipndm": (sample_ipndm, 1, {}),
}
NAMES = sorted(SAMPLERS)


def _run(name, model, x, sigmas, **kw):
    fn, _, params = SAMPLERS[name]
    return fn(model, x, sigmas, disable=True, **{**params, **kw})


def _sched(kind, n=8):
    if kind == "flow":
        return torch.linspace(1.0, 0.0, n + 1, dtype=F64)
    return edm_sigmas(n, 0.05, 80.0)


# --- bad input ----------------------------------------------------------------------------

BAD_SIGMAS = [
    ("increasing", torch.tensor([1.0, 2.0, 0.0], dtype=F64), "decreasing"),
    ("repeated", torch.tensor([3.0, 1.0, 1.0, 0.0], dtype=F64), "decreasing"),
    ("nan", torch.tensor([3.0, float("nan"), 0.0], dtype=F64), "NaN"),
    ("inf", torch.tensor([float("inf"), 1.0, 0.0], dtype=F64), "inf"),
    ("negative", torch.tensor([3.0, 1.0, -0.5], dtype=F64), "negative"),
    ("one value", torch.tensor([3.0], dtype=F64), "at least 2"),
    ("empty", torch.tensor([], dtype=F64), "at least 2"),
    ("2-D", torch.tensor([[3.0, 1.0, 0.0]], dtype=F64), "1-D"),
    ("integers", torch.tensor([3, 1, 0]), "floating"),
    ("not numbers", ["a", "b"], "sigmas"),
]


@pytest.mark.parametrize("case", BAD_SIGMAS, ids=[c[0] for c in BAD_SIGMAS])
@pytest.mark.parametrize("name", NAMES)
def test_bad_sigmas_raise_value_error_before_any_model_call(analytic, name, case):
    _, sigmas, message = case
    model = analytic("edm")
    x = torch.zeros(1, 3, 8, 8, dtype=F64)
    with pytest.raises(ValueError, match=message):
        _run(name, model, x, sigmas, extra_args={"seed": 1})
    assert model.calls == 0


BAD_X = [
    ("nan", lambda: torch.full((1, 3, 8, 8), float("nan"), dtype=F64), "NaN"),
    ("inf", lambda: torch.full((1, 3, 8, 8), float("inf")), "NaN or inf"),
    ("integer", lambda: torch.zeros(1, 3, 8, 8, dtype=torch.int64), "floating"),
    ("no batch", lambda: torch.tensor(1.0), "batch"),
    ("empty batch", lambda: torch.zeros(0, 3, 8, 8), "batch"),
    ("not a tensor", lambda: [[0.0]], "Tensor"),
]


@pytest.mark.parametrize("case", BAD_X, ids=[c[0] for c in BAD_X])
@pytest.mark.parametrize("name", NAMES)
def test_bad_latent_raises_value_error_before_any_model_call(analytic, name, case):
    _, make, message = case
    model = analytic("edm")
    with pytest.raises(ValueError, match=message):
        _run(name, model, make(), edm_sigmas(4, 0.01, 10.0))
    assert model.calls == 0


def _bad_values(p: Param) -> list:
    """Values its Param refuses: outside the choices or range, not an integer, not a number,
    a bool given as text it does not read."""
    if p.kind == "choice":
        return ["no_such_choice"]
    if p.kind == "bool":
        return ["maybe", 2]
    out = [math.nan, "many"]
    if p.minimum is not None:
        out.append(p.minimum - (1 if p.kind == "int" else 0.5 * (p.step or 0.01)))
    if p.maximum is not None:
        out.append(p.maximum + 1)
    if p.kind == "int":
        out += [p.default + 0.5, True]
    return out


PARAM_CASES = [(sid, p.name, v) for sid, spec in sorted(REGISTRY.items()) for p in spec.params
               for v in _bad_values(p)]


@pytest.mark.parametrize(("sampler_id", "name", "value"), PARAM_CASES,
                         ids=[f"{sid}-{n}-{v!r}" for sid, n, v in PARAM_CASES])
def test_every_parameter_is_checked_at_entry_from_its_param(analytic, sampler_id, name, value):
    """Each solver validates its keyword arguments from the registry's Params (one place
    states each rule): a ValueError naming the parameter, before any model call."""
    model = analytic("edm")
    fn = REGISTRY[sampler_id].function
    with pytest.raises(ValueError, match=name):
        fn(model, torch.zeros(1, 3, 8, 8, dtype=F64), edm_sigmas(4, 0.01, 10.0), disable=True, **{name: value})
    assert model.calls == 0


def test_settings_given_as_text_are_read_as_written(analytic):
    """Infotext / override_settings hand values back as text: "False" is False."""
    model = analytic("edm")
    x, sig = torch.zeros(1, 3, 8, 8, dtype=F64), edm_sigmas(4, 0.01, 10.0)
    for text, value in (("False", False), ("True", True)):
        got = sample_deis(model, x, sig, disable=True, stop_at_sigma_min=text, order="3", variant="logrho")
        want = sample_deis(model, x, sig, disable=True, stop_at_sigma_min=value, order=3, variant="logrho")
        assert torch.equal(got, want)
    assert not torch.equal(sample_deis(model, x, sig, disable=True, stop_at_sigma_min="False"),
                           sample_deis(model, x, sig, disable=True, stop_at_sigma_min="True"))


@pytest.mark.parametrize("name", ["seeds_1", "seeds_2", "seeds_3", "er_sde"])
def test_inverted_noise_window_is_refused(analytic, name):
    """noise_start > noise_end would run without noise, silently: refused, naming both."""
    model = analytic("edm")
    with pytest.raises(ValueError, match="noise_start .* must not exceed noise_end"):
        _run(name, model, torch.zeros(1, 3, 8, 8, dtype=F64), edm_sigmas(4, 0.01, 10.0), noise_start=0.8,
             noise_end=0.2)
    assert model.calls == 0
    _run(name, model, torch.zeros(1, 3, 8, 8, dtype=F64), edm_sigmas(4, 0.01, 10.0), noise_start=0.5,
         noise_end=0.5)  # an empty window is allowed: no noise


@pytest.mark.parametrize("name", NAMES)
def test_stop_at_sigma_min_without_a_step_before_zero_is_rejected(analytic, name):
    model = analytic("edm")
    with pytest.raises(ValueError, match="stop_at_sigma_min"):
        _run(name, model, torch.zeros(1, 3, 8, 8, dtype=F64), torch.tensor([2.0, 0.0], dtype=F64),
             stop_at_sigma_min=True)
    assert model.calls == 0


def test_sigmas_as_list_and_float32_are_accepted(analytic):
    model = analytic("edm")
    x = model.prior_sample(1, 10.0, torch.Generator().manual_seed(0))
    a = sample_seeds_2(model, x, [10.0, 3.0, 1.0, 0.0], eta=0.0, disable=True)
    b = sample_seeds_2(model, x, torch.tensor([10.0, 3.0, 1.0, 0.0], dtype=torch.float32), eta=0.0, disable=True)
    assert torch.equal(a, b) and bool(torch.isfinite(a).all())


# --- dtypes and batch sizes ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_model_outputs_and_latents(mixture4, name, kind, half):
    """Half-precision model outputs are stepped in float32; the result stays within a few
    output roundings of the float32 run. Half-precision latents come back in their dtype."""
    exact = AnalyticDenoiser(mixture4, kind=kind)
    sigmas = _sched(kind, 12)
    x = exact.prior_sample(3, float(sigmas[0]), torch.Generator().manual_seed(1)).float()
    ref = _run(name, exact, x, sigmas, extra_args={"seed": 1})
    tol = 4 * torch.finfo(half).eps * ref.abs().max().item()
    out = _run(name, AnalyticDenoiser(mixture4, kind=kind, output_dtype=half), x, sigmas, extra_args={"seed": 1})
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    assert (out - ref).abs().max().item() <= tol
    lat = _run(name, exact, x.to(half), sigmas, extra_args={"seed": 1})
    assert lat.dtype == half and bool(torch.isfinite(lat).all())
    assert (lat.float() - ref).abs().max().item() <= tol


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", NAMES)
def test_batch_sizes(analytic, name, batch):
    model = analytic("edm")
    sigmas = edm_sigmas(6, 0.01, 20.0)
    x = model.prior_sample(batch, 20.0, torch.Generator().manual_seed(2))
    out = _run(name, model, x, sigmas, extra_args={"seed": 10})
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    for b in (0, batch - 1):
        one = _run(name, model, x[b:b + 1], sigmas, extra_args={"seed": 10 + b})
        assert (one - out[b:b + 1]).abs().max().item() <= 1e-12


# --- short and unusual schedules -----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_two_sigmas_ending_at_zero_is_one_denoise(analytic, name):
    model = analytic("edm")
    x = model.prior_sample(2, 5.0, torch.Generator().manual_seed(3))
    out = _run(name, model, x, torch.tensor([5.0, 0.0], dtype=F64), extra_args={"seed": 1})
    assert model.calls == 1
    assert torch.equal(out, model(x, torch.tensor([5.0, 5.0], dtype=F64)))


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("name", NAMES)
def test_two_positive_sigmas_is_one_step(mixture4, name, kind):
    model = AnalyticDenoiser(mixture4, kind=kind)
    sig = [0.8, 0.3] if kind == "flow" else [5.0, 1.5]
    x = model.prior_sample(2, sig[0], torch.Generator().manual_seed(4))
    quiet = {"s_noise": 0.0} if "s_noise" in inspect.signature(SAMPLERS[name][0]).parameters else {}
    out = _run(name, model, x, torch.tensor(sig, dtype=F64), extra_args={"seed": 1}, **quiet)
    assert model.calls == SAMPLERS[name][1]
    # no noise, first step: every solver starts like DDIM at worst (first order), so the
    # result is within O(h^2) of the exact first-order update and not equal to the start
    mt = model.seeds_model_type
    d = model(x, torch.full((2,), sig[0], dtype=F64))
    s0, s1 = mt.ve_sigma(sig[0]), mt.ve_sigma(sig[1])
    ddim = mt.alpha(sig[1]) * (d + (s1 / s0) * (x / mt.alpha(sig[0]) - d))
    h = math.log(s0 / s1)
    assert (out - ddim).abs().max().item() <= h * h * x.abs().max().item()
    assert (out - x).abs().max().item() > 0.1


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("name", NAMES)
def test_schedule_ending_above_zero_returns_the_state_there(mixture4, name, kind):
    model = AnalyticDenoiser(mixture4, kind=kind)
    full = _sched(kind, 8)
    upto = full[:-1]  # ends at its last positive sigma
    x = model.prior_sample(2, float(full[0]), torch.Generator().manual_seed(5))
    out = _run(name, model, x, upto, extra_args={"seed": 3})
    assert model.calls == SAMPLERS[name][1] * (len(upto) - 1)  # no final model call
    model.calls = 0
    stopped = _run(name, model, x, full, extra_args={"seed": 3}, stop_at_sigma_min=True)
    assert model.calls == SAMPLERS[name][1] * (len(full) - 2)
    assert torch.equal(out, stopped)
    # the state at sigma_min is still noisy: one more denoise changes it
    denoised = _run(name, model, x, full, extra_args={"seed": 3})
    assert (denoised - out).abs().max().item() > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_flow_first_sigma_one(mixture4, name):
    model = AnalyticDenoiser(mixture4, kind="flow")
    seen = []

    def spy(x, sigma, **kw):
        seen.append(float(sigma[0]))
        return model(x, sigma, **kw)

    spy.seeds_model_type = model.seeds_model_type
    x = model.prior_sample(2, 1.0, torch.Generator().manual_seed(6))
    out = _run(name, spy, x, torch.linspace(1.0, 0.0, 7, dtype=F64), extra_args={"seed": 2})
    assert bool(torch.isfinite(out).all())
    assert seen[0] == pytest.approx(1.0 - 1e-4, rel=1e-12)
    assert max(seen) < 1.0


# --- callback and the final step -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["edm", "flow"])
@pytest.mark.parametrize("name", NAMES)
def test_callback_once_per_step_and_exact_final_denoise(mixture4, name, kind):
    model = AnalyticDenoiser(mixture4, kind=kind)
    sigmas = _sched(kind, 7)
    x = model.prior_sample(2, float(sigmas[0]), torch.Generator().manual_seed(7)).float()
    log = []
    # the paper's steps: the step to sigma = 0 returns D (flow models otherwise take it in
    # sigma, tested in test_sigma_steps.py)
    out = _run(name, model, x, sigmas, extra_args={"seed": 4}, callback=log.append, sigma_steps=False)
    assert [d["i"] for d in log] == list(range(len(sigmas) - 1))
    mt = model.seeds_model_type
    expected_sig = mt.prepare_sigmas(sigmas.tolist())
    assert torch.equal(log[0]["x"], x)
    for d, s in zip(log, expected_sig):
        assert set(d) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert float(d["sigma"]) == pytest.approx(s, rel=1e-6) and float(d["sigma_hat"]) == float(d["sigma"])
        again = model(d["x"], d["sigma"] * torch.ones(2))
        assert (again - d["denoised"]).abs().max().item() <= 1e-6
    assert out.dtype == x.dtype
    assert torch.equal(out, log[-1]["denoised"])  # the final step returns D exactly


@pytest.mark.parametrize("name", NAMES)
def test_callback_with_stop_at_sigma_min(analytic, name):
    model = analytic("edm")
    sigmas = edm_sigmas(5, 0.01, 10.0)
    log = []
    _run(name, model, model.prior_sample(1, 10.0, torch.Generator().manual_seed(8)), sigmas,
         stop_at_sigma_min=True, callback=log.append)
    assert [d["i"] for d in log] == list(range(len(sigmas) - 2))


def test_flow_offset_keeps_a_dense_top_of_schedule_decreasing():
    """A first sigma of 1 followed by a sigma above ComfyUI's offset (0.9999) must stay a
    decreasing schedule after the offset, and every solver must run on it."""
    from seeds_samplers.bench.gmm import AnalyticDenoiser
    from seeds_samplers.samplers.model_types import FLOW
    from seeds_samplers.samplers.registry import SAMPLERS

    sig = [1.0, 0.99995, 0.9, 0.5, 0.1, 0.0]
    prepared = FLOW.prepare_sigmas(sig)
    assert all(a > b for a, b in zip(prepared, prepared[1:]))
    assert 0.99995 < prepared[0] < 1.0
    model = AnalyticDenoiser(kind="flow")
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for spec in SAMPLERS.values():
        out = spec.function(model, x, torch.tensor(sig, dtype=torch.float64), disable=True, extra_args={"seed": 1})
        assert torch.isfinite(out).all(), spec.id
