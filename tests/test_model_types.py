"""The model-type adapter: explicit names, the analytic model's attribute, host objects
recognised by attributes and class names (faked here: no host is imported), the flow
first-sigma offset and noise_scale."""

from __future__ import annotations

import math

import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.model_types import FLOW, VE, ModelType, resolve_model_type
from seeds_samplers.samplers.seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLERS = [sample_seeds_1, sample_seeds_2, sample_seeds_3, sample_er_sde]


# --- fakes of host objects (class names as the hosts spell them) ---------------------------


class CONST:  # ComfyUI comfy.model_sampling.CONST (rectified flow)
    pass


class EPS:  # ComfyUI comfy.model_sampling.EPS
    pass


class ModelSamplingDiscreteFlow:
    """Shifted discrete-flow schedule: sigma(t) = shift t / (1 + (shift - 1) t), t in (0, 1]."""

    def __init__(self, shift=3.0, noise_scale=None):
        self.shift = shift
        t = torch.arange(1, 1001, dtype=torch.float32) / 1000
        self.sigmas = self.sigma(t)
        if noise_scale is not None:
            self.noise_scale = noise_scale

    def sigma(self, t):
        return self.shift * t / (1 + (self.shift - 1) * t)

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor(1.0 - percent, dtype=torch.float64)))


class ModelSamplingDiscrete:
    def __init__(self):
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        abar = torch.cumprod(1 - betas, 0)
        self.sigmas = ((1 - abar) / abar).sqrt().float()

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def percent_to_sigma(self, percent):
        return 999999999.9 if percent <= 0 else float(self.sigmas[int((1 - percent) * 999)])


def comfy_model_sampling(flow, **kw):
    """ComfyUI builds ``class ModelSampling(schedule, parameterisation)`` dynamically."""
    if flow:
        cls = type("ModelSampling", (ModelSamplingDiscreteFlow, CONST), {})
    else:
        cls = type("ModelSampling", (ModelSamplingDiscrete, EPS), {})
    return cls(**kw)


class _Patcher:
    def __init__(self, ms, broken=False):
        self.ms, self.broken = ms, broken

    def get_model_object(self, name):
        if self.broken:
            raise AttributeError(name)
        assert name == "model_sampling"
        return self.ms


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeComfyModel:
    """KSamplerX0Inpaint-like: ``model.inner_model`` is the CFGGuider, whose ``model_patcher``
    answers ``get_model_object("model_sampling")``; older ComfyUI: ``inner_model.inner_model``."""

    def __init__(self, denoiser, ms, patched=True, broken=False):
        self.denoiser = denoiser
        base = _Namespace(model_sampling=ms)
        patcher = _Patcher(ms, broken) if patched else _Namespace()
        self.inner_model = _Namespace(model_patcher=patcher, inner_model=base)
        self.sigmas_seen = []

    def __call__(self, x, sigma, **kw):
        self.sigmas_seen.append(float(sigma.reshape(-1)[0]))
        return self.denoiser(x, sigma, **kw)


class _Plain:
    """The analytic denoiser without its model-type attribute (as a host's model looks)."""

    def __init__(self, denoiser):
        self.denoiser = denoiser

    def __call__(self, x, sigma, **kw):
        return self.denoiser(x, sigma, **kw)


# --- explicit names ----------------------------------------------------------------------

VE_NAMES = ["ve", "eps", "v", "v_prediction", "edm", "vp", "VE", "Eps"]
FLOW_NAMES = ["flow", "const", "rf", "rectified_flow", "CONST"]


@pytest.mark.parametrize("name", VE_NAMES + FLOW_NAMES)
def test_explicit_names(name):
    mt = resolve_model_type(object(), name)
    assert mt.kind == ("flow" if name in FLOW_NAMES else "ve")


def test_explicit_type_wins_over_detection(mixture4):
    flow_model = AnalyticDenoiser(mixture4, kind="flow")
    assert resolve_model_type(flow_model).is_flow
    assert resolve_model_type(flow_model, "ve") == VE
    custom = ModelType("flow", 0.01, 0.9, noise_scale=0.5)
    assert resolve_model_type(flow_model, custom) is custom
    ms = comfy_model_sampling(flow=True)
    assert resolve_model_type(FakeComfyModel(_Plain(flow_model), ms), "eps").kind == "ve"


@pytest.mark.parametrize("bad", ["x0", "score", "", 3, 1.0, ["ve"]])
def test_bad_model_type_names_the_problem(bad):
    with pytest.raises(ValueError, match="model_type|model type"):
        resolve_model_type(object(), bad)
    with pytest.raises(ValueError):
        ModelType("vp")


@pytest.mark.parametrize("kind", ["vp_discrete", "edm", "flow"])
def test_analytic_model_attribute(mixture4, kind):
    model = AnalyticDenoiser(mixture4, kind=kind)
    mt = resolve_model_type(model)
    assert mt is model.seeds_model_type
    assert mt.is_flow == (kind == "flow")
    assert mt.sigma_min == pytest.approx(model.sigma_min) and mt.sigma_max == pytest.approx(model.sigma_max)
    if kind == "vp_discrete":
        assert mt.sigma_table is not None and mt.sigma_table.numel() == 1000


def test_unknown_objects_are_ve():
    assert resolve_model_type(lambda x, s: x) == VE
    assert resolve_model_type(_Namespace(inner_model=_Namespace())) == VE


# --- ComfyUI ------------------------------------------------------------------------------


@pytest.mark.parametrize("patched,broken", [(True, False), (False, False), (True, True)],
                         ids=["model_patcher", "base-model-attribute", "patcher-raises"])
def test_comfy_model_sampling_recognised_by_class_name(patched, broken):
    flow_ms = comfy_model_sampling(flow=True, shift=3.0, noise_scale=0.5)
    mt = resolve_model_type(FakeComfyModel(None, flow_ms, patched, broken))
    assert mt.is_flow
    assert mt.sigma_min == pytest.approx(float(flow_ms.sigma_min))
    assert mt.sigma_max == pytest.approx(1.0)
    assert mt.noise_scale == 0.5
    assert mt.flow_first_sigma == pytest.approx(3 * 0.9999 / (1 + 2 * 0.9999), rel=1e-12)
    assert mt.sigma_table is not None and bool((mt.sigma_table[1:] >= mt.sigma_table[:-1]).all())

    eps_ms = comfy_model_sampling(flow=False)
    mt = resolve_model_type(FakeComfyModel(None, eps_ms, patched, broken))
    assert mt.kind == "ve" and mt.noise_scale == 1.0
    assert mt.sigma_min == pytest.approx(0.0292, abs=1e-4) and mt.sigma_max == pytest.approx(14.6146, abs=1e-3)


def test_only_the_class_name_const_makes_a_flow_model():
    class LooksLikeFlow(ModelSamplingDiscreteFlow):  # a flow schedule, but no CONST mixin
        pass

    assert resolve_model_type(FakeComfyModel(None, LooksLikeFlow())).kind == "ve"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_comfy_flow_model_first_sigma_one_is_offset(mixture4, sampler):
    """A flow schedule starting at sigma = 1 (lambda = -inf) starts at percent_to_sigma(1e-4)."""
    analytic = AnalyticDenoiser(mixture4, kind="flow")
    ms = comfy_model_sampling(flow=True, shift=3.0)
    host = FakeComfyModel(_Plain(analytic), ms)
    sigmas = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0], dtype=torch.float64)
    x = analytic.prior_sample(2, 1.0, torch.Generator().manual_seed(0))
    got = sampler(host, x, sigmas, extra_args={"seed": 1}, disable=True)
    first = ms.percent_to_sigma(1e-4)
    assert host.sigmas_seen[0] == pytest.approx(first, rel=1e-12)
    assert all(s < 1.0 for s in host.sigmas_seen)
    # the same as an explicit flow type with that offset on the bare model
    want = sampler(analytic, x, sigmas, extra_args={"seed": 1}, disable=True,
                   model_type=ModelType("flow", flow_first_sigma=first))
    assert (got - want).abs().max().item() <= 1e-12
    assert bool(torch.isfinite(got).all())


@pytest.mark.parametrize("sampler", [sample_seeds_2, sample_er_sde])
def test_comfy_noise_scale_multiplies_the_injected_noise(mixture4, sampler):
    analytic = AnalyticDenoiser(mixture4, kind="flow")
    host = FakeComfyModel(_Plain(analytic), comfy_model_sampling(flow=True, shift=1.0, noise_scale=0.5))
    sigmas = torch.tensor([0.9, 0.6, 0.3, 0.1], dtype=torch.float64)
    x = analytic.prior_sample(2, 0.9, torch.Generator().manual_seed(1))
    got = sampler(host, x, sigmas, extra_args={"seed": 2}, disable=True)
    first = host.inner_model.model_patcher.ms.percent_to_sigma(1e-4)
    mt = ModelType("flow", flow_first_sigma=first)
    half = sampler(analytic, x, sigmas, extra_args={"seed": 2}, s_noise=0.5, model_type=mt, disable=True)
    full = sampler(analytic, x, sigmas, extra_args={"seed": 2}, s_noise=1.0, model_type=mt, disable=True)
    assert (got - half).abs().max().item() <= 1e-12
    assert (got - full).abs().max().item() > 1e-3


def test_without_model_sampling_the_flow_offset_is_1e_4():
    sig = FLOW.prepare_sigmas([1.0, 0.5, 0.0])
    assert sig == [1.0 - 1e-4, 0.5, 0.0]
    assert FLOW.prepare_sigmas([0.9, 0.5]) == [0.9, 0.5]
    assert VE.prepare_sigmas([1.0, 0.5, 0.0]) == [1.0, 0.5, 0.0]


# --- Forge and A1111 ----------------------------------------------------------------------


def test_forge_predictor():
    class PredictionFlux:
        sigma_min, sigma_max = 0.0, 1.0
        sigmas = torch.linspace(0.001, 1.0, 1000)

    class PredictionDiscreteEps:
        sigmas = torch.linspace(0.03, 14.6, 1000)
        sigma_min, sigma_max = 0.03, 14.6

    flux = resolve_model_type(_Namespace(inner_model=_Namespace(predictor=PredictionFlux())))
    assert flux.is_flow and flux.sigma_max == 1.0
    eps = resolve_model_type(_Namespace(inner_model=_Namespace(predictor=PredictionDiscreteEps())))
    assert eps.kind == "ve" and eps.sigma_table is not None and eps.sigma_max == pytest.approx(14.6)


def test_a1111_compvis_denoiser_table():
    table = torch.linspace(0.03, 14.6, 1000)
    for t in (table, table.flip(0)):  # ascending as k-diffusion stores it, or reversed
        mt = resolve_model_type(_Namespace(inner_model=_Namespace(sigmas=t)))
        assert mt.kind == "ve"
        assert mt.sigma_min == pytest.approx(0.03) and mt.sigma_max == pytest.approx(14.6)
        assert bool((mt.sigma_table[1:] >= mt.sigma_table[:-1]).all())


# --- the scalar maps ------------------------------------------------------------------------


@pytest.mark.parametrize("mt", [VE, FLOW], ids=["ve", "flow"])
def test_scalar_maps_are_consistent(mt):
    values = [1e-4, 0.01, 0.3, 0.5, 0.9, 0.9999] + ([] if mt.is_flow else [1.0, 14.6, 80.0, 1e4])
    for s in values:
        lam = mt.half_log_snr(s)
        assert mt.sigma_at(lam) == pytest.approx(s, rel=1e-12)
        assert mt.sigma_from_ve(mt.ve_sigma(s)) == pytest.approx(s, rel=1e-12)
        assert mt.ve_sigma(s) == pytest.approx(math.exp(-lam), rel=1e-12)
        assert mt.alpha(s) == pytest.approx(1 - s if mt.is_flow else 1.0)
        assert mt.ve_sigma(s) * mt.alpha(s) == pytest.approx(s, rel=1e-12)
    assert mt.half_log_snr(0.0) == math.inf
    if mt.is_flow:
        assert mt.half_log_snr(1.0) == -math.inf and mt.ve_sigma(1.0) == math.inf


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_flow_sigmas_above_one_are_rejected(mixture4, sampler):
    model = AnalyticDenoiser(mixture4, kind="flow")
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="flow"):
        sampler(model, x, torch.tensor([1.5, 0.5, 0.0], dtype=torch.float64), disable=True)
    assert model.calls == 0
