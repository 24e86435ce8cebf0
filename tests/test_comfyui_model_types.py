"""The model type behind ComfyUI's sampler wrapper (nodes/model_type.py): the
model_sampling object reached through the guider and model patcher (or the older base-model
attribute) is recognised by attributes and class names (faked here: no host is imported),
and every solver the glue hands to ComfyUI gets it as ``model_type``: the flow first-sigma
offset and noise_scale reach the math. The solvers themselves read no host wrapper."""

from __future__ import annotations

import pytest
import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.nodes.model_type import comfy_model_type, comfy_solver
from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.model_types import VE, ModelType, resolve_model_type
from seeds_samplers.samplers.seeds import sample_seeds_1, sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLERS = [sample_seeds_1, sample_seeds_2, sample_seeds_3, sample_er_sde]


# --- fakes of host objects (class names as ComfyUI spells them) --------------------------


class CONST:  # ComfyUI comfy.model_sampling.CONST (rectified flow)
    pass


class EPS:  # ComfyUI comfy.model_sampling.EPS
    pass


class _Table:
    """sigma_min / sigma_max from the ascending table, as ComfyUI's ModelSampling classes."""

    sigmas: torch.Tensor

    sigma_min = property(lambda self: self.sigmas[0])
    sigma_max = property(lambda self: self.sigmas[-1])


class ModelSamplingDiscreteFlow(_Table):
    """Shifted discrete-flow schedule: sigma(t) = shift t / (1 + (shift - 1) t), t in (0, 1]."""

    def __init__(self, shift=3.0, noise_scale=None):
        self.shift = shift
        t = torch.arange(1, 1001, dtype=torch.float32) / 1000
        self.sigmas = self.sigma(t)
        if noise_scale is not None:
            self.noise_scale = noise_scale

    def sigma(self, t):
        return self.shift * t / (1 + (self.shift - 1) * t)

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor(1.0 - percent, dtype=torch.float64)))


class ModelSamplingDiscrete(_Table):
    def __init__(self):
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        abar = torch.cumprod(1 - betas, 0)
        self.sigmas = ((1 - abar) / abar).sqrt().float()

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


# --- detection and what reaches the solvers ------------------------------------------------


@pytest.mark.parametrize("patched,broken", [(True, False), (False, False), (True, True)],
                         ids=["model_patcher", "base-model-attribute", "patcher-raises"])
def test_comfy_model_sampling_recognised_by_class_name(patched, broken):
    flow_ms = comfy_model_sampling(flow=True, shift=3.0, noise_scale=0.5)
    mt = comfy_model_type(FakeComfyModel(None, flow_ms, patched, broken))
    assert mt.is_flow
    assert mt.sigma_min == pytest.approx(float(flow_ms.sigma_min))
    assert mt.sigma_max == pytest.approx(1.0)
    assert mt.noise_scale == 0.5
    assert mt.flow_first_sigma == pytest.approx(3 * 0.9999 / (1 + 2 * 0.9999), rel=1e-12)
    assert mt.sigma_table is not None and bool((mt.sigma_table[1:] >= mt.sigma_table[:-1]).all())

    eps_ms = comfy_model_sampling(flow=False)
    mt = comfy_model_type(FakeComfyModel(None, eps_ms, patched, broken))
    assert mt.kind == "ve" and mt.noise_scale == 1.0
    assert mt.sigma_min == pytest.approx(0.0292, abs=1e-4) and mt.sigma_max == pytest.approx(14.6146, abs=1e-3)


def test_only_the_class_name_const_makes_a_flow_model():
    class LooksLikeFlow(ModelSamplingDiscreteFlow):  # a flow schedule, but no CONST mixin
        pass

    assert comfy_model_type(FakeComfyModel(None, LooksLikeFlow())).kind == "ve"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_comfy_flow_model_first_sigma_one_is_offset(mixture4, sampler):
    """A flow schedule starting at sigma = 1 (lambda = -inf) starts at percent_to_sigma(1e-4)."""
    analytic = AnalyticDenoiser(mixture4, kind="flow")
    ms = comfy_model_sampling(flow=True, shift=3.0)
    host = FakeComfyModel(_Plain(analytic), ms)
    sigmas = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0], dtype=torch.float64)
    x = analytic.prior_sample(2, 1.0, torch.Generator().manual_seed(0))
    got = comfy_solver(sampler)(host, x, sigmas, extra_args={"seed": 1}, disable=True)
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
    got = comfy_solver(sampler)(host, x, sigmas, extra_args={"seed": 2}, disable=True)
    first = host.inner_model.model_patcher.ms.percent_to_sigma(1e-4)
    mt = ModelType("flow", flow_first_sigma=first)
    half = sampler(analytic, x, sigmas, extra_args={"seed": 2}, s_noise=0.5, model_type=mt, disable=True)
    full = sampler(analytic, x, sigmas, extra_args={"seed": 2}, s_noise=1.0, model_type=mt, disable=True)
    assert (got - half).abs().max().item() <= 1e-12
    assert (got - full).abs().max().item() > 1e-3


def test_solvers_read_no_host_wrapper():
    """Without the glue a solver sees a ComfyUI wrapper as an unknown model (VE): the model
    type of a ComfyUI model reaches it only as ``model_type``."""
    host = FakeComfyModel(None, comfy_model_sampling(flow=True))
    assert resolve_model_type(host) == VE
    assert comfy_model_type(host).is_flow


def test_an_explicit_model_type_wins_over_the_host_one(mixture4):
    analytic = AnalyticDenoiser(mixture4, kind="flow")
    host = FakeComfyModel(_Plain(analytic), comfy_model_sampling(flow=True))
    sigmas = torch.tensor([0.9, 0.6, 0.3, 0.0], dtype=torch.float64)
    x = analytic.prior_sample(1, 0.9, torch.Generator().manual_seed(0))
    got = comfy_solver(sample_seeds_2)(host, x, sigmas, extra_args={"seed": 1}, disable=True, model_type="eps")
    want = sample_seeds_2(analytic, x, sigmas, extra_args={"seed": 1}, disable=True, model_type="ve")
    assert torch.equal(got, want)


def test_settings_are_defaults_that_options_override():
    seen = {}

    def solver(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, model_type=None):
        seen.update(eta=eta, model_type=model_type)
        return x

    host = FakeComfyModel(None, comfy_model_sampling(flow=True))
    fn = comfy_solver(solver, {"eta": 0.5})
    fn(host, torch.zeros(1), torch.tensor([1.0, 0.0]))
    assert seen["eta"] == 0.5 and seen["model_type"].is_flow
    fn(host, torch.zeros(1), torch.tensor([1.0, 0.0]), eta=0.25)
    assert seen["eta"] == 0.25
