"""The trained digits models and their Frechet distance (issue: "a real trained network").

* the weight loaders reject missing, corrupt and mismatched files with a clear error;
* a short training run (a few steps) works end to end and is reproducible from its seed;
* the shipped weights load and denoise held-out digits with the error recorded beside them;
* the model wrapper is seen by the samplers through the same adapter path as a host model
  (the adapter tests of the analytic model, for eps and flow);
* FD: exact on Gaussians of known distance, and FD(held-out vs train digits) is far below
  FD(pure noise).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from seeds_samplers.digits.check import heldout_check, record_path
from seeds_samplers.digits.denoiser import DigitsDenoiser, load_digits_model
from seeds_samplers.digits.fd import (DigitsFD, FeatureStats, feature_stats, frechet_distance, load_classifier)
from seeds_samplers.digits.schedule import eps_sigma_table, flow_sigma_table
from seeds_samplers.digits.unet import UNet, UNetConfig
from seeds_samplers.digits.weights import load_weights, save_weights, weights_path
from seeds_samplers.samplers.er_sde import sample_er_sde
from seeds_samplers.samplers.model_types import ModelType, resolve_model_type
from seeds_samplers.samplers.seeds import sample_seeds_2, sample_seeds_3

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = UNetConfig(channels=(8, 8, 8), groups=4)


def tiny_model(kind: str, seed: int = 0) -> DigitsDenoiser:
    torch.manual_seed(seed)
    return DigitsDenoiser(UNet(TINY), kind)


# --- loaders -------------------------------------------------------------------------------


def test_missing_weights_are_named(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_digits_model("eps", tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="not found"):
        load_classifier(tmp_path / "nope.safetensors")


def test_corrupt_file_is_rejected(tmp_path):
    bad = tmp_path / "digits-eps.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(64))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_digits_model("eps", bad)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_classifier(bad)
    # a truncated copy of a real file
    good = tmp_path / "good.safetensors"
    save_weights(good, tiny_model("eps").net.state_dict(), "eps", TINY.to_dict())
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_digits_model("eps", cut)


def test_mismatched_files_are_rejected(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, tiny_model("flow").net.state_dict(), "flow", TINY.to_dict())
    assert load_digits_model("flow", path).kind == "flow"  # the right kind loads
    with pytest.raises(ValueError, match="holds a 'flow' model, expected 'eps'"):
        load_digits_model("eps", path)
    with pytest.raises(ValueError, match="holds a 'flow' model, expected 'classifier'"):
        load_classifier(path)
    # architecture in the metadata does not match the tensors
    wrong = tmp_path / "wrong.safetensors"
    save_weights(wrong, tiny_model("eps").net.state_dict(), "eps", UNetConfig().to_dict())
    with pytest.raises(ValueError, match="does not match the digits U-Net"):
        load_digits_model("eps", wrong)
    # a safetensors file from elsewhere (no format metadata)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a SEEDS digits weight file"):
        load_digits_model("eps", foreign)
    with pytest.raises(ValueError, match="kind must be one of"):
        load_digits_model("v", path)


# --- training ------------------------------------------------------------------------------


def test_short_training_run_end_to_end_and_reproducible(tmp_path):
    from seeds_samplers.digits import train

    paths = []
    for run in range(2):
        out = tmp_path / f"run{run}" / "digits-eps.safetensors"
        out.parent.mkdir()
        assert train.main(["--kind", "eps", "--steps", "2", "--seed", "3", "--out", str(out)]) == 0
        paths.append(out)
    record = json.loads(paths[0].with_suffix(".json").read_text())
    assert record["steps"] == 2 and record["seed"] == 3 and "--steps 2" in record["command"]
    assert math.isfinite(record["final_loss"]) and record["train_seconds"] >= 0
    a, _ = load_weights(paths[0], "eps")
    b, _ = load_weights(paths[1], "eps")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same seed, same weights
    model = load_digits_model("eps", paths[0])
    x = model.prior_sample(2, torch.Generator().manual_seed(0))
    out = sample_seeds_2(model, x, torch.tensor([14.6, 3.0, 0.5, 0.0]), extra_args={"seed": 0}, disable=True)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_short_classifier_run(tmp_path):
    from seeds_samplers.digits import train

    out = tmp_path / "classifier.safetensors"
    assert train.main(["--kind", "classifier", "--steps", "2", "--out", str(out)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert 0.0 <= record["heldout_accuracy"] <= 1.0
    net = load_classifier(out)
    assert net.features(torch.zeros(3, 1, 32, 32)).shape == (3, 128)


# --- the shipped weights -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["eps", "flow", "cond"])
def test_shipped_weights_denoise_heldout_digits_with_the_recorded_error(kind):
    record = json.loads(record_path(kind).read_text())
    assert "heldout_check" in record, "run python -m seeds_samplers.digits.check --write after training"
    model = load_digits_model(kind)
    check = heldout_check(model)
    for key, want in record["heldout_check"].items():
        assert check[key] == pytest.approx(want, rel=2e-3, abs=1e-6), key
    # a trained denoiser: better than the mean digit at every level, far better at low noise
    errors = [v for k, v in check.items() if k.startswith("sigma=")]
    assert max(errors) < check["mean_image"] and errors[0] < 0.05 * check["mean_image"]


@pytest.mark.parametrize("dataset, least", [("digits", 0.95), ("patches", 0.9)])  # patches: 6 photographs
def test_shipped_classifier_is_accurate(dataset, least):
    from seeds_samplers.digits.data import load_dataset
    from seeds_samplers.digits.fd import CLASSIFIERS

    if dataset == "patches":
        pytest.importorskip("skimage")
    record = json.loads(weights_path(CLASSIFIERS[dataset]).with_suffix(".json").read_text())
    x, y = load_dataset(dataset, "heldout")
    with torch.inference_mode():
        acc = float((load_classifier(dataset=dataset)(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(record["heldout_accuracy"], abs=2e-3)
    assert acc >= least


# --- the wrapper through the model-type adapter (as the analytic model's tests) ---------------


@pytest.mark.parametrize("kind", ["eps", "flow"])
def test_wrapper_model_type_is_detected_like_a_host_model(kind):
    model = tiny_model(kind)
    mt = resolve_model_type(model)
    table = eps_sigma_table() if kind == "eps" else flow_sigma_table()
    assert mt.is_flow == (kind == "flow")
    assert mt.sigma_min == pytest.approx(float(table[0])) and mt.sigma_max == pytest.approx(float(table[-1]))
    assert mt.sigma_table is not None and torch.allclose(mt.sigma_table, table)
    assert resolve_model_type(model, "ve") == ModelType("ve")  # an explicit type wins
    if kind == "flow":
        # percent_to_sigma(1e-4) of the shift-3 flow map, as ComfyUI offsets sigma = 1
        assert mt.flow_first_sigma == pytest.approx(3 * 0.9999 / (1 + 2 * 0.9999), rel=1e-12)


class _Recorder:
    def __init__(self, model):
        self.model, self.sigmas = model, []
        self.model_sampling = model.model_sampling

    def __call__(self, x, sigma, **kw):
        self.sigmas.append(float(torch.as_tensor(sigma).reshape(-1)[0]))
        return self.model(x, sigma, **kw)


@pytest.mark.parametrize("sampler", [sample_seeds_2, sample_seeds_3, sample_er_sde])
def test_flow_wrapper_first_sigma_one_is_offset(sampler):
    model = tiny_model("flow")
    rec = _Recorder(model)
    sigmas = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0], dtype=torch.float64)
    x = model.prior_sample(2, torch.Generator().manual_seed(0))
    got = sampler(rec, x, sigmas, extra_args={"seed": 1}, disable=True)
    first = model.model_sampling.percent_to_sigma(1e-4)
    assert rec.sigmas[0] == pytest.approx(first, rel=1e-6) and all(s < 1.0 for s in rec.sigmas)
    want = sampler(model, x, sigmas, extra_args={"seed": 1}, disable=True,
                   model_type=ModelType("flow", flow_first_sigma=first))
    assert (got - want).abs().max().item() <= 1e-6
    assert bool(torch.isfinite(got).all())


@pytest.mark.parametrize("kind", ["eps", "flow"])
def test_wrapper_sampling_matches_the_explicit_model_type(kind):
    model = tiny_model(kind)
    mt = resolve_model_type(model)
    sig = [8.0, 2.0, 0.5, 0.1, 0.0] if kind == "eps" else [0.9, 0.6, 0.3, 0.1, 0.0]
    sigmas = torch.tensor(sig, dtype=torch.float64)
    x = 0.5 * torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    got = sample_seeds_2(model, x, sigmas, extra_args={"seed": 4}, disable=True)
    want = sample_seeds_2(model, x, sigmas, extra_args={"seed": 4}, disable=True, model_type=mt)
    assert torch.equal(got, want)
    if kind == "flow":
        other = sample_seeds_2(model, x, sigmas, extra_args={"seed": 4}, disable=True, model_type="ve")
        assert (got - other).abs().max().item() > 1e-3  # the detected type matters


def test_flow_wrapper_rejects_sigmas_above_one():
    model = tiny_model("flow")
    with pytest.raises(ValueError, match="flow"):
        sample_seeds_2(model, torch.zeros(1, 1, 32, 32), torch.tensor([1.5, 0.5, 0.0]), disable=True)
    assert model.calls == 0


def test_wrapper_x0_relation():
    """eps: x0 = x - sigma eps_hat with the net fed x / sqrt(1 + sigma^2); flow: x0 = x - sigma v_hat."""
    for kind in ("eps", "flow"):
        model = tiny_model(kind)
        x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(5))
        s = torch.tensor(0.7)
        t = model.model_sampling.timestep(s.reshape(1)).expand(2)
        with torch.inference_mode():
            out = model(x, s)
            if kind == "eps":
                want = x - 0.7 * model.net(x / math.sqrt(1 + 0.49), t)
            else:
                want = x - 0.7 * model.net(x, t)
        assert torch.allclose(out, want, atol=1e-6)


# --- Frechet distance ---------------------------------------------------------------------------


def test_frechet_distance_of_known_gaussians():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    da = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5, 0.2], dtype=torch.float64)
    db = torch.tensor([0.3, 1.0, 2.0, 1.0, 1.5, 4.0], dtype=torch.float64)
    ma, mb = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    # commuting covariances (same eigenvectors): FD = |dm|^2 + sum (sqrt(a) - sqrt(b))^2
    a = FeatureStats(ma, q @ torch.diag(da) @ q.T, 10)
    b = FeatureStats(mb, q @ torch.diag(db) @ q.T, 10)
    want = float(((ma - mb) ** 2).sum() + ((da.sqrt() - db.sqrt()) ** 2).sum())
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-10)
    assert frechet_distance(b, a) == pytest.approx(want, rel=1e-10)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)
    # non-commuting: against the 1-D closed form after a common rotation is impossible, so
    # check the trace identity tr(sqrt(A^1/2 B A^1/2)) = sum of sqrt(eig(A B))
    c = FeatureStats(ma, torch.diag(da), 10)
    ev = torch.linalg.eigvals(torch.diag(da) @ b.cov).real.clamp_min(0).sqrt().sum()
    want = float(((ma - mb) ** 2).sum() + da.sum() + db.sum() - 2 * ev)
    assert frechet_distance(c, b) == pytest.approx(want, rel=1e-8)


def test_feature_stats_need_two_samples():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_stats(torch.zeros(1, 4))


def test_fd_of_real_digits_is_far_below_fd_of_noise():
    from seeds_samplers.digits.data import load_digits

    fd = DigitsFD()
    n = 500
    real = fd.floor(n, seed=0)  # 500 training digits vs the held-out reference
    noise = fd(torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(0)).clamp(-1, 1))
    blank = fd(-torch.ones(n, 1, 32, 32) + 0.01 * torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert real < noise / 20 and real < blank / 20, (real, noise, blank)
    # the floor shrinks with the sample count (the finite-sample bias of FD)
    assert fd.floor(1000, seed=0) < fd.floor(100, seed=0)
    assert fd(torch.full((4, 1, 32, 32), float("nan"))) == math.inf
    with pytest.raises(ValueError, match="shape"):
        fd(torch.zeros(4, 3, 32, 32))
    x, _ = load_digits("heldout")
    assert fd(x) == pytest.approx(0.0, abs=1e-3)  # the reference against itself
