"""Model-type detection of the webuis' denoiser wrappers (webui/model_type.py): objects
named and shaped like the hosts' (A1111's CompVis(V)Denoiser and SD3Denoiser, Forge's
ForgeScheduleLinker with its predictors) are recognised by attributes and class names, and
the detected type decides the math."""

from __future__ import annotations


import pytest
import torch

from support import webui_standins as S

from seeds_samplers.bench.gmm import AnalyticDenoiser  # noqa: E402
from seeds_samplers.samplers import sample_deis  # noqa: E402
from seeds_samplers.samplers.model_types import VE, resolve_model_type  # noqa: E402
from seeds_samplers.samplers.schedules import sd_sigma_table  # noqa: E402
from seeds_samplers.webui.model_type import denoiser_model_type, detect_model_type  # noqa: E402


class CFG(torch.nn.Module):
    """The webui's CFG wrapper: ``inner_model`` is the denoiser wrapper."""

    def __init__(self, inner):
        super().__init__()
        self.inner_model = inner

    def forward(self, x, sigma, **kw):
        return self.inner_model(x, sigma)


def flow_table(shift=3.0):
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000.0
    return (shift * t / (1 + (shift - 1) * t)).to(torch.float32)


class DiscreteSchedule(torch.nn.Module):
    def __init__(self, sigmas):
        super().__init__()
        self.register_buffer("sigmas", sigmas)


class SD3Denoiser(DiscreteSchedule):
    """A1111 / reForge: DiscreteSchedule over the flow model's sigmas."""

    def __init__(self, exact):
        super().__init__(flow_table())
        self.exact = exact

    def forward(self, x, sigma, **kw):
        return self.exact(x, sigma).to(x.dtype)


class SD3Inferencer:
    def add_noise_to_latent(self, x, noise, amount):
        return x * (1 - amount) + noise * amount


class OtherFlowDenoiser(DiscreteSchedule):
    """Another class name, but its model noises latents the flow way."""

    def __init__(self):
        super().__init__(flow_table())
        self.inner_model = SD3Inferencer()


class ForgeScheduleLinker(torch.nn.Module):
    def __init__(self, predictor):
        super().__init__()
        self.predictor = predictor

    @property
    def sigmas(self):
        return self.predictor.sigmas


class Prediction(torch.nn.Module):
    def __init__(self, sigmas, prediction_type):
        super().__init__()
        self.prediction_type = prediction_type
        self.register_buffer("sigmas", sigmas)

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]


class PredictionFlux(Prediction):
    pass


class PredictionDiscreteFlow(Prediction):
    pass


def test_a1111_sd3_denoiser_is_flow():
    mt = denoiser_model_type(CFG(SD3Denoiser(None)))
    assert mt.kind == "flow" and mt.sigma_max == pytest.approx(1.0) and mt.sigma_min < 0.01
    assert denoiser_model_type(CFG(OtherFlowDenoiser())).kind == "flow"
    assert detect_model_type(CFG(SD3Denoiser(None))).kind == "flow"
    # the solvers read no host wrapper: without the glue the SD3 model looks VE
    assert resolve_model_type(CFG(SD3Denoiser(None))).kind == "ve"


def test_a1111_compvis_denoiser_is_ve_with_its_table():
    inner = S.CompVisDenoiser()
    mt = detect_model_type(CFG(inner))
    assert mt.kind == "ve"
    torch.testing.assert_close(mt.sigma_table, sd_sigma_table())
    # a table inside [0, 1] alone does not make a model flow
    assert denoiser_model_type(CFG(DiscreteSchedule(flow_table()))).kind == "ve"


@pytest.mark.parametrize("cls,kind,expected", [
    (Prediction, "epsilon", "ve"), (Prediction, "eps", "ve"), (Prediction, "v_prediction", "ve"), (Prediction, "edm", "ve"), (PredictionFlux, "const", "flow"),
    (PredictionDiscreteFlow, "const", "flow"), (Prediction, "const", "flow"),
])
def test_forge_predictors(cls, kind, expected):
    table = flow_table() if expected == "flow" else sd_sigma_table().float()
    mt = detect_model_type(CFG(ForgeScheduleLinker(cls(table, kind))))
    assert mt.kind == expected
    assert mt.sigma_max == pytest.approx(float(table[-1]))


def test_forge_predictor_without_a_prediction_type():
    """The predictor's class name alone: Flux / Flow classes are flow, others VE with the
    predictor's table."""
    class PredictionFlux:
        sigma_min, sigma_max = 0.0, 1.0
        sigmas = torch.linspace(0.001, 1.0, 1000)

    class PredictionDiscreteEps:
        sigmas = torch.linspace(0.03, 14.6, 1000)
        sigma_min, sigma_max = 0.03, 14.6

    class Linker:
        def __init__(self, predictor):
            self.predictor = predictor

    flux = denoiser_model_type(CFG(Linker(PredictionFlux())))
    assert flux.is_flow and flux.sigma_max == 1.0
    eps = denoiser_model_type(CFG(Linker(PredictionDiscreteEps())))
    assert eps.kind == "ve" and eps.sigma_table is not None and eps.sigma_max == pytest.approx(14.6)


def test_a_model_sampling_on_the_wrapped_model_decides():
    """reForge-style: the denoiser wrapper's model carries a ComfyUI-style model_sampling."""
    class CONST:
        pass

    class FlowSampling(CONST):
        sigma_min, sigma_max = 0.001, 1.0
        sigmas = flow_table()

    class Model(torch.nn.Module):
        model_sampling = FlowSampling()

    inner = S.CompVisDenoiser()
    inner.inner_model = Model()
    assert detect_model_type(CFG(inner)).is_flow
    assert denoiser_model_type(CFG(None)) == VE


def test_unknown_prediction_type_or_wrapper_is_refused():
    with pytest.raises(ValueError, match="prediction type 'x0'"):
        detect_model_type(CFG(ForgeScheduleLinker(Prediction(flow_table(), "x0"))))
    with pytest.raises(ValueError, match="denoiser wrapper 'DiscreteSchedule'"):
        detect_model_type(CFG(DiscreteSchedule(flow_table())))


def test_detected_flow_type_decides_the_math(make_mixture):
    """Through the SD3 wrapper the solver gives exactly its flow result (not the VE one)."""
    exact = AnalyticDenoiser(make_mixture(), kind="flow", shift=3.0)
    model = CFG(SD3Denoiser(exact))
    sigmas = torch.linspace(1.0, 0.0, 9, dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    auto = sample_deis(model, x, sigmas, disable=True, variant="logrho", model_type=detect_model_type(model))
    flow = sample_deis(model, x, sigmas, disable=True, variant="logrho", model_type="flow")
    ve = sample_deis(model, x, sigmas[1:], disable=True, variant="logrho", model_type="ve")
    torch.testing.assert_close(auto, flow)
    assert (auto - ve).abs().max() > 1e-3
