"""The model-type adapter: explicit names, the analytic model's attribute, a carried
model_sampling object, a k-diffusion wrapper's table, the flow first-sigma offset and the
scalar maps. The hosts' wrappers are read by the glue: tests/test_comfyui_model_types.py,
tests/test_webui_model_types.py."""

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


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)


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


def test_a_carried_model_sampling_object():
    """A model carrying a model_sampling object (the digits models, a host's base model):
    flow when one of its classes is named CONST, with its range and first-sigma offset."""
    class CONST:
        pass

    class Flow(CONST):
        sigma_min, sigma_max, noise_scale = 0.002, 1.0, 0.5

        def percent_to_sigma(self, percent):
            return 1.0 - percent

    mt = resolve_model_type(_Namespace(model_sampling=Flow()))
    assert mt.is_flow and (mt.sigma_min, mt.sigma_max, mt.noise_scale) == (0.002, 1.0, 0.5)
    assert mt.flow_first_sigma == 1.0 - 1e-4
    assert resolve_model_type(_Namespace(model_sampling=object())) == VE  # no sigma_min: not one


def test_without_model_sampling_the_flow_offset_is_1e_4():
    sig = FLOW.prepare_sigmas([1.0, 0.5, 0.0])
    assert sig == [1.0 - 1e-4, 0.5, 0.0]
    assert FLOW.prepare_sigmas([0.9, 0.5]) == [0.9, 0.5]
    assert VE.prepare_sigmas([1.0, 0.5, 0.0]) == [1.0, 0.5, 0.0]


# --- k-diffusion wrappers ----------------------------------------------------------------


def test_kdiffusion_wrapper_sigma_table():
    """A k-diffusion ``DiscreteSchedule`` wrapper (``CFGDenoiser(CompVisDenoiser(...))``):
    VE with the wrapper's table, ascending whichever way it is stored."""
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
