"""The second trained model (issue 17 item 3) and the decided-table metric (item 1).

* the patches data: 16x16 RGB patches of scikit-image's photographs, a block split with no
  patch shared between the splits;
* the U-Net and the classifier take other channels and sides without changing the digits
  models' configs (their shipped files keep their metadata);
* the shipped patches models (eps, and flow for a second flow model) denoise held-out patches
  with the error recorded beside them, and
  the patch classifier identifies the photograph with its recorded accuracy
  (tests/test_digits.py, beside the digit classifier);
* KID on the classifier's features: real patches sit far below noise, and the decided-table
  machinery (paired runs, cache, minimum detectable difference) behaves as documented.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from seeds_samplers.digits.check import heldout_check, record_path
from seeds_samplers.digits.data import PATCH_IMAGES, load_dataset, load_patches
from seeds_samplers.digits.denoiser import DigitsDenoiser, load_digits_model, model_file
from seeds_samplers.digits.fd import DigitsFD
from seeds_samplers.digits.unet import UNet, UNetConfig
from seeds_samplers.digits.weights import load_weights, weights_path

pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("skimage")


# --- data ----------------------------------------------------------------------------------


def test_patches_data_shapes_and_split():
    xt, yt = load_patches("train")
    xh, yh = load_patches("heldout")
    assert xt.shape[1:] == (3, 16, 16) and xh.shape[1:] == (3, 16, 16)
    assert xt.dtype == torch.float32 and float(xt.min()) >= -1.0 and float(xt.max()) <= 1.0
    assert set(yt.unique().tolist()) == set(range(len(PATCH_IMAGES))) == set(yh.unique().tolist())
    # a quarter of each photograph's blocks held out
    for c in range(len(PATCH_IMAGES)):
        frac = int((yh == c).sum()) / int((yh == c).sum() + (yt == c).sum())
        assert 0.2 <= frac <= 0.3, (PATCH_IMAGES[c], frac)
    # no held-out patch is a training patch (blocks are disjoint; patches never cross blocks)
    train_rows = {bytes(r.numpy().tobytes()) for r in xt.flatten(1)}
    assert not any(bytes(r.numpy().tobytes()) in train_rows for r in xh.flatten(1))
    assert torch.equal(load_dataset("patches", "heldout")[0], xh)  # the loader is deterministic
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("cifar")


# --- networks ------------------------------------------------------------------------------------


def test_unet_config_keeps_the_digits_metadata_and_round_trips_new_fields():
    assert "image_size" not in UNetConfig().to_dict()  # shipped digits files: unchanged metadata
    _, config = load_weights(weights_path("digits-eps"), "eps")
    assert UNetConfig.from_dict(config) == UNetConfig()
    rgb = UNetConfig(channels=(8, 8, 8), groups=4, in_channels=3, image_size=16)
    assert UNetConfig.from_dict(rgb.to_dict()) == rgb
    torch.manual_seed(0)
    model = DigitsDenoiser(UNet(rgb), "eps")
    x = model.prior_sample(2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 16, 16)
    with torch.inference_mode():
        assert model(x, torch.tensor(3.0)).shape == x.shape


def test_short_patches_training_run(tmp_path):
    from seeds_samplers.digits import train

    paths = []
    for run in range(2):
        out = tmp_path / f"run{run}" / "patches-eps.safetensors"
        out.parent.mkdir()
        assert train.main(["--dataset", "patches", "--kind", "eps", "--steps", "2", "--seed", "1",
                           "--out", str(out)]) == 0
        paths.append(out)
    record = json.loads(paths[0].with_suffix(".json").read_text())
    assert record["dataset"] == "patches" and record["steps"] == 2
    a, config = load_weights(paths[0], "eps")
    b, _ = load_weights(paths[1], "eps")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same weights
    assert UNetConfig.from_dict(config).in_channels == 3 and UNetConfig.from_dict(config).image_size == 16
    model = load_digits_model("patches", paths[0])
    assert model.prior_sample(1).shape == (1, 3, 16, 16)


# --- the shipped weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind", [("patches", "eps"), ("patches-flow", "flow")])
def test_shipped_patches_model_denoises_heldout_patches_with_the_recorded_error(name, kind):
    if not weights_path(model_file(name)).is_file():
        pytest.skip(f"{model_file(name)} not trained yet: python -m seeds_samplers train-digits --dataset patches "
                    f"--kind {kind}")
    record = json.loads(record_path(name).read_text())
    assert record["dataset"] == "patches"
    assert "heldout_check" in record, f"run python -m seeds_samplers.digits.check --write --models {name}"
    model = load_digits_model(name)
    assert model.kind == kind
    assert model.net.config.in_channels == 3 and model.net.config.image_size == 16
    check = heldout_check(model, "patches")
    for key, want in record["heldout_check"].items():
        assert check[key] == pytest.approx(want, rel=2e-3, abs=1e-6), key
    # a trained denoiser: better than the mean patch at every level, far better at low noise
    errors = [v for k, v in check.items() if k.startswith("sigma=")]
    assert max(errors) < check["mean_image"] and errors[0] < 0.1 * check["mean_image"]


def test_patch_kid_separates_real_patches_from_noise():
    metric = DigitsFD(dataset="patches")
    floor = [metric.kid_floor(500, s) for s in range(2)]
    noise = metric.kid(torch.rand(500, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert noise > 10 * max(floor)  # the floor at 500 patches: 0.02-0.26 (one seed is a few blocks)
    assert metric.kid(torch.full((4, 3, 16, 16), float("nan"))) == math.inf


# --- the decided tables ------------------------------------------------------------------------------


def test_mdd_and_calls_follow_the_one_sided_t_rule():
    from seeds_samplers.bench.decide import KID_RESOLUTION, T95, called, mdd

    # pooled RMS spread 5 over 3 seeds: 2.920 * 5 / sqrt(3)
    assert mdd([3.0, 4.0 * math.sqrt(2)], 3) == pytest.approx(T95[2] * math.sqrt((9 + 32) / 2) / math.sqrt(3))
    assert mdd([1.0], 1) == math.inf
    assert called(-9.0, 5.0, 3) and not called(-8.0, 5.0, 3)  # 2.920 * 5 / sqrt 3 = 8.43
    assert not called(float("inf"), 1.0, 3)
    # identical updates in two implementations: a round-off difference with a tinier spread
    # is called on the t rule alone, never with the metric's resolution
    assert called(1.4e-4, 7.6e-5, 3) and not called(1.4e-4, 7.6e-5, 3, KID_RESOLUTION)
    assert called(-9.0, 5.0, 3, KID_RESOLUTION)


def test_paired_runs_are_cached_and_identical_contenders_tie(tmp_path, monkeypatch):
    from seeds_samplers.bench import decide
    from seeds_samplers.bench.compare import ours

    monkeypatch.setenv("SEEDS_SAMPLERS_CACHE", str(tmp_path))
    model = decide.kid_model("digits-eps")
    a, b = ours("seeds_1"), ours("seeds_1", "SEEDS-1 again")
    logs = []
    res, cost = decide.measure(model, [a, b], 3, [0, 1], "karras", 24, logs.append)
    assert cost["runs"] == 4 and cost["cached"] == 0 and cost["sample_calls"] == 4 * 3 * 24
    for seed in (0, 1):  # same latents, same noise: the same samples, the same KID
        assert res[(a.label, "ours")][seed]["value"] == res[(b.label, "ours")][seed]["value"]
    assert res[(a.label, "ours")][0]["value"] != res[(a.label, "ours")][1]["value"]
    again, cost2 = decide.measure(model, [a], 3, [0, 1], "karras", 24, logs.append)
    assert cost2["runs"] == 0 and cost2["cached"] == 2
    assert all(again[(a.label, "ours")][s]["value"] == res[(a.label, "ours")][s]["value"] for s in (0, 1))
    _, cost3 = decide.measure(model, [a], 3, [0], "karras", 32, logs.append)  # another sample count: new key
    assert cost3["runs"] == 1


def test_bench_writes_a_decided_table_with_floor_and_mdd(tmp_path, monkeypatch):
    from seeds_samplers.bench.benchmark import main as bench_main

    monkeypatch.setenv("SEEDS_SAMPLERS_CACHE", str(tmp_path / "cache"))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    args = ["--models", "digits-eps", "--budgets", "3", "--kinds", "deterministic", "--seeds", "2",
            "--trained-samples", "24", "--screen-samples", "16", "--keep", "2", "--skip-overhead", "--no-comfy",
            "--out", str(tmp_path / "out"), "--readme", str(readme)]
    assert bench_main(args) == 0
    doc = (tmp_path / "docs" / "benchmark.md").read_text()
    section = doc.split("<!-- bench-decided-digits-eps-karras-deterministic-nfe3:start -->")[1]
    assert "<!-- bench-decided:start -->" in doc and "minimum detectable difference" in doc
    assert "**floor** (KID×10³ of 24 real training images" in section and "Screening (KID×10³" in section
    assert "| iPNDM | ours |" in section and "our best" in section and section.count("(dropped)") == 2
    assert section.count("| k-diffusion |") == 2  # the two kept anchors ran at full size
    assert "0 from the cache" in section
    assert bench_main(args) == 0  # a re-run computes nothing and keeps the cost of the call that measured
    again = (tmp_path / "docs" / "benchmark.md").read_text().split("deterministic-nfe3:start -->")[1]
    cost = [line for line in section.splitlines() if line.startswith("- cost: ")]
    assert len(cost) == 1 and cost[0] in again and "0 from the cache" in again
    (tmp_path / "docs" / "benchmark.md").write_text("# x\n")  # the page lost the section: the rewrite says so
    assert bench_main(args) == 0
    fresh = (tmp_path / "docs" / "benchmark.md").read_text()
    assert "runs read from the cache (measured by an earlier call" in fresh.split("deterministic-nfe3:start -->")[1]
