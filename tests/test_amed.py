"""AMED-Solver / AMED-Plugin (docs/amed.md): predictor, r -> sigma_m, equivalence of the
untrained (r = 1/2) samplers with their base solvers, AFS, feature capture, storage and
grid checks, and distillation on the digits model."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from seeds_samplers.samplers.amed_capture import BottleneckCapture, capture_for, find_bottleneck
from seeds_samplers.amed.storage import check_compatible, load_predictor, save_predictor
from seeds_samplers.bench.gmm import AnalyticDenoiser
from seeds_samplers.samplers import SAMPLERS, sample_amed, sample_amed_plugin
from seeds_samplers.samplers.amed_core import AMEDCore, feature_positions
from seeds_samplers.samplers.amed_predictor import AMEDPredictor, sigma_embedding
from seeds_samplers.samplers.schedules import SCHEDULES


class Counting:
    def __init__(self, model):
        self.model, self.calls = model, 0
        self.seeds_model_type = model.seeds_model_type

    def __call__(self, x, sigma, **kw):
        self.calls += 1
        return self.model(x, sigma, **kw)


def _setup(kind="vp_discrete", steps=5, batch=3, seed=0):
    m = AnalyticDenoiser(kind=kind)
    sig = SCHEDULES["logsnr_uniform"](steps, m.seeds_model_type)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=g, dtype=torch.float64)
    x = x * (float(sig[0]) if kind != "flow" else 1.0)
    return m, sig, x


def _interleave(sig, r=0.5):
    """The grid sigma_0, sigma_m0, sigma_1, ..., sigma_{K-1}, 0 with geometric midpoints."""
    pos = [float(s) for s in sig if s > 0]
    out = []
    for a, b in zip(pos, pos[1:]):
        out += [a, a ** (1 - r) * b ** r]
    return torch.tensor(out + [pos[-1], 0.0], dtype=torch.float64)


# --- predictor ---------------------------------------------------------------------------
def test_predictor_parameter_names_shapes_and_ranges():
    p = AMEDPredictor(64, scale_dir=0.05, scale_time=0.2)
    assert set(p.state_dict()) == {f"{n}.{w}" for n in ("map_layer0", "enc_layer0", "enc_layer1", "fc_r",
                                                           "fc_scale_dir", "fc_scale_time") for w in ("weight", "bias")}
    assert p.outputs == 3 and AMEDPredictor(64).outputs == 1 and AMEDPredictor(64, 0.01).outputs == 2
    assert 8000 < sum(v.numel() for v in AMEDPredictor(64).parameters()) < 9000  # the paper's ~9k
    # untrained: exactly the base method
    r, c, a = p(torch.randn(5, 8, 8), 3.0, 1.0)
    assert r.shape == c.shape == a.shape == (5,)
    assert torch.equal(r, torch.full((5,), 0.5)) and torch.equal(c, torch.ones(5)) and torch.equal(a, torch.ones(5))
    with torch.no_grad():
        for q in p.parameters():
            q.normal_(0, 5.0)
    r, c, a = p(torch.randn(256, 64) * 100, 80.0, 0.002)
    assert r.min() >= 0 and r.max() <= 1 and r.std() > 0
    assert c.min() >= 0.95 - 1e-6 and c.max() <= 1.05 + 1e-6 and c.std() > 0
    assert a.min() >= 0.8 - 1e-6 and a.max() <= 1.2 + 1e-6
    # a time-only call depends on the sigmas only
    q = AMEDPredictor(64)
    with torch.no_grad():
        for w in q.parameters():
            w.normal_(0, 0.3)
    r0, _, _ = q(None, 80.0, 10.0, batch=4)
    r1, _, _ = q(None, 10.0, 1.0, batch=4)
    assert torch.all(r0 == r0[0]) and not torch.allclose(r0, r1)
    with pytest.raises(ValueError, match="positions"):
        p(torch.randn(2, 16), 1.0, 0.5)
    with pytest.raises(ValueError, match="batch"):
        p(None, 1.0, 0.5)
    with pytest.raises(ValueError, match="scale_dir"):
        AMEDPredictor(64, scale_dir=1.5)


def test_sigma_embedding_layout():
    e = sigma_embedding(torch.tensor([0.0, 2.0]))
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sine half first
    freqs = 10000.0 ** (-torch.arange(4) / 3.0)
    torch.testing.assert_close(e[1, :4], torch.sin(2.0 * freqs))


def test_feature_positions_pools_to_the_predictor_grid():
    f = torch.randn(2, 16, 16)
    out = feature_positions(f, 64)
    torch.testing.assert_close(out.reshape(2, 8, 8), nn.functional.avg_pool2d(f[:, None], 2)[:, 0])
    assert feature_positions(torch.randn(2, 8, 8), 64).shape == (2, 64)


# --- r -> sigma_m ------------------------------------------------------------------------
def test_r_to_sigma_m_is_linear_in_log_sigma_and_per_sample():
    r = torch.tensor([1e-9, 0.25, 0.5, 1 - 1e-9])
    core = AMEDCore("amed", [8.0, 0.5], lambda y, s: y)
    sm = core.sigma_m(r, 0, torch.float64)
    torch.testing.assert_close(sm, torch.tensor([8.0, 8.0 ** 0.75 * 0.5 ** 0.25, 2.0, 0.5], dtype=torch.float64))
    lam = -sm.log()
    h = math.log(8.0 / 0.5)
    torch.testing.assert_close(lam, -math.log(8.0) + r.double() * h)
    torch.testing.assert_close(AMEDPredictor.sigma_m(r.double(), 8.0, 0.5), sm)
    with pytest.raises(ValueError):
        AMEDPredictor.sigma_m(r, 1.0, 0.0)  # no degenerate sigma_m = 0


# --- r = 1/2: the base solvers -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["vp_discrete", "edm"])
def test_solver_and_dpm2_plugin_at_half_equal_dpm_solver_2(kind):
    import k_diffusion.sampling as K

    m, sig, x = _setup(kind)
    ref = K.sample_dpm_2(m, x.clone(), sig, disable=True)
    a = sample_amed(m, x.clone(), sig, afs=False, disable=True)
    b = sample_amed_plugin(m, x.clone(), sig, base="dpm_2", afs=False, disable=True)
    torch.testing.assert_close(a, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(b, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("base", ["euler", "dpmpp_2m"])
def test_plugin_at_half_is_its_base_solver_on_the_refined_grid(base):
    import k_diffusion.sampling as K

    m, sig, x = _setup()
    fine = _interleave(sig)
    ref = (K.sample_euler if base == "euler" else K.sample_dpmpp_2m)(m, x.clone(), fine, disable=True)
    out = sample_amed_plugin(m, x.clone(), sig, base=base, afs=False, lower_order_final=False, disable=True)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def _ab_reference(m, x, fine, order, variable):
    """Adams-Bashforth on dx/dsigma = (x - D) / sigma over ``fine``: fixed iPNDM weights or
    exact variable-step weights (numpy polynomial integration); the step to 0 returns D."""
    fixed = ([1.0], [1.5, -0.5], [23 / 12, -16 / 12, 5 / 12], [55 / 24, -59 / 24, 37 / 24, -9 / 24])
    s = fine.tolist()
    hist, nodes = [], []
    for i in range(len(s) - 1):
        den = m(x, torch.full((x.shape[0],), s[i], dtype=torch.float64))
        if s[i + 1] == 0:
            return den
        hist.insert(0, (x - den) / s[i])
        nodes.insert(0, s[i])
        k = min(order, len(hist))
        if not variable:
            w = [(s[i + 1] - s[i]) * c for c in fixed[k - 1]]
        else:
            w = []
            for j in range(k):
                others = [nodes[q] for q in range(k) if q != j]
                poly = np.poly1d([1.0])
                for o in others:
                    poly = poly * np.poly1d([1.0, -o]) / (nodes[j] - o)
                integ = poly.integ()
                w.append(integ(s[i + 1]) - integ(s[i]))
        x = x + sum(wj * hj for wj, hj in zip(w, hist[:k]))
    return x


@pytest.mark.parametrize("base,variable", [("ipndm", False), ("deis", True)])
@pytest.mark.parametrize("order", [2, 3])
def test_multistep_plugins_at_half_are_adams_bashforth_on_the_refined_grid(base, variable, order):
    m, sig, x = _setup()
    ref = _ab_reference(m, x.clone(), _interleave(sig), order, variable)
    out = sample_amed_plugin(m, x.clone(), sig, base=base, max_order=order, afs=False, disable=True)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prediction", ["data", "noise"])
def test_dpmpp_third_order_sub_step_is_exact_for_model_outputs_quadratic_in_lambda(prediction):
    """DPM-Solver++(3M) / DPM-Solver-3M (Lu et al. 2022): with three past model outputs of a
    model output that is a quadratic polynomial in lambda = -log s, the third-order update
    integrates the ODE exactly (uneven steps, per-pixel coefficients)."""
    g = torch.Generator().manual_seed(5)
    a, b, c = (torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64) for _ in range(3))
    s = [14.0, 5.0, 2.6, 0.9]                     # uneven steps in lambda
    lam = [-math.log(v) for v in s]
    q = [a + b * t + c * t * t for t in lam]      # the model output at each node

    if prediction == "data":   # dy/dlam = D - y:  y1 = (s1/s0) y0 + s1 [e^t (q - q' + q'')]_{t0}^{t1}
        def exact(y0, i, j):
            prim = lambda t: math.exp(t) * (a + b * (t - 1) + c * (t * t - 2 * t + 2))  # noqa: E731
            return y0 * (s[j] / s[i]) + (prim(lam[j]) - prim(lam[i])) * s[j]
    else:                      # dy/ds = eps:  y1 = y0 + [e^-t (q + q' + q'')]_{t0}^{t1}
        def exact(y0, i, j):
            prim = lambda t: math.exp(-t) * (a + b * (t + 1) + c * (t * t + 2 * t + 2))  # noqa: E731
            return y0 + prim(lam[j]) - prim(lam[i])

    core = AMEDCore("dpmpp_2m", s, None, max_order=3, prediction=prediction, lower_order_final=False)
    y = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    for i in range(3):
        st = lambda v: torch.full((2,), v, dtype=torch.float64)  # noqa: E731
        out = core._dpmpp(y, q[i], st(s[i]), st(s[i + 1]), None)
        y_exact = exact(y, i, i + 1)
        if i < 2:   # warm-up orders 1 and 2 are not exact for a quadratic
            assert (out - y_exact).abs().max() > 1e-6
        else:
            torch.testing.assert_close(out, y_exact, rtol=0, atol=1e-11)
        y = y_exact
    # c scales the model terms only: c = 1 + e changes the step by e x (its model part)
    core2 = AMEDCore("dpmpp_2m", s, None, max_order=3, prediction=prediction, lower_order_final=False)
    y0 = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    outs = []
    for cval in (1.0, 1.1):
        core2.reset()
        yy = y0
        for i in range(3):
            st = lambda v: torch.full((2,), v, dtype=torch.float64)  # noqa: E731
            yy = core2._dpmpp(yy, q[i], st(s[i]), st(s[i + 1]), st(cval) if i == 2 else None)
        outs.append(yy)
    core2.reset()
    yy = y0
    for i in range(2):
        st = lambda v: torch.full((2,), v, dtype=torch.float64)  # noqa: E731
        yy = core2._dpmpp(yy, q[i], st(s[i]), st(s[i + 1]), None)
    free = yy * (s[3] / s[2]) if prediction == "data" else yy   # the part without model terms
    torch.testing.assert_close(outs[1] - free, (outs[0] - free) * 1.1, rtol=1e-12, atol=1e-12)


def test_dpmpp_plugin_takes_order_3_only_when_asked():
    m, sig, x = _setup()
    two = sample_amed_plugin(m, x.clone(), sig, base="dpmpp_2m", afs=False, disable=True)
    explicit2 = sample_amed_plugin(m, x.clone(), sig, base="dpmpp_2m", max_order=2, afs=False, disable=True)
    three = sample_amed_plugin(m, x.clone(), sig, base="dpmpp_2m", max_order=3, afs=False, disable=True)
    torch.testing.assert_close(two, explicit2, rtol=0, atol=0)
    assert (three - two).abs().max() > 1e-6


def test_flow_model_steps_in_ve_equivalent_variables():
    """On a flow model, r = 1/2 AMED-Solver is DPM-Solver-2 on (x / alpha, sigma / alpha)."""
    m, sig, x = _setup("flow")
    out = sample_amed(m, x.clone(), sig, afs=False, disable=True)
    mt = m.seeds_model_type
    s = mt.prepare_sigmas(sig.tolist())
    y = x / mt.alpha(s[0])
    for i in range(len(s) - 1):
        if s[i + 1] == 0:
            y = m(y * mt.alpha(s[i]), torch.full((3,), s[i], dtype=torch.float64))
            break
        v0, v1 = mt.ve_sigma(s[i]), mt.ve_sigma(s[i + 1])
        d = (y - m(y * mt.alpha(s[i]), torch.full((3,), s[i], dtype=torch.float64))) / v0
        vm = math.sqrt(v0 * v1)
        ym = y + (vm - v0) * d
        dm = (ym - m(ym / (1 + vm), torch.full((3,), vm / (1 + vm), dtype=torch.float64))) / vm
        y = y + (v1 - v0) * dm
    torch.testing.assert_close(out, y, rtol=0, atol=1e-9)


def test_afs_saves_a_call_and_final_step_options():
    m, sig, x = _setup(steps=4)
    c = Counting(m)
    sample_amed(c, x.clone(), sig, disable=True)  # 3 AMED steps, AFS, final denoise
    assert c.calls == 2 * 3 - 1 + 1
    c.calls = 0
    stop = sample_amed_plugin(c, x.clone(), sig, base="ipndm", stop_at_sigma_min=True, disable=True)
    assert c.calls == 2 * 3 - 1
    assert stop.abs().mean() > 0
    # AFS: the first direction is y / sqrt(1 + sigma^2) (a one-interval grid ending above 0)
    two = torch.tensor([float(sig[0]), float(sig[1])], dtype=torch.float64)
    out = sample_amed(m, x.clone(), two, disable=True)
    s0, s1 = two.tolist()
    d0 = x / math.sqrt(1 + s0 * s0)
    sm = math.sqrt(s0 * s1)
    ym = x + (sm - s0) * d0
    dm = (ym - m(ym, torch.full((3,), sm, dtype=torch.float64))) / sm
    torch.testing.assert_close(out, x + (s1 - s0) * dm, rtol=0, atol=1e-10)


def test_registry_entries_and_bad_input():
    assert {"amed_solver", "amed_plugin"} <= set(SAMPLERS)
    assert SAMPLERS["amed_plugin"].calls() == 2
    m, sig, x = _setup()
    with pytest.raises(ValueError, match="base"):
        sample_amed_plugin(m, x, sig, base="heun")
    with pytest.raises(ValueError, match="max_order"):
        sample_amed_plugin(m, x, sig, base="ipndm", max_order=7)
    with pytest.raises(ValueError, match="r must be"):
        sample_amed(m, x, sig, r=1.0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_amed(m, x, sig.flip(0))


# --- feature capture -----------------------------------------------------------------------
class _Net(nn.Module):
    """A stand-in U-Net: middle_block is a Sequential run layer by layer (as ComfyUI's is),
    and the forward takes transformer_options like ComfyUI's UNetModel."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv2d(1, 4, 3, padding=1, stride=4)
        self.middle_block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1))

    def forward(self, x, t=None, transformer_options=None):
        h = self.inp(x)
        for layer in self.middle_block:
            h = layer(h)
        return h


def test_capture_takes_the_conditional_chunk_in_the_batch_order():
    net = _Net()
    mod, root = find_bottleneck(net)
    assert mod is net.middle_block[1] and root is net
    x = torch.randn(4, 1, 32, 32)  # two chunks of a latent batch of 2
    full = net(x).mean(1)
    for labels, want in (([1, 0], full[2:]), ([0, 1], full[:2])):
        cap = BottleneckCapture(mod, root)
        with cap:
            cap.clear()
            net(x, transformer_options={"cond_or_uncond": labels})
            torch.testing.assert_close(cap.take(), want)
    # uncond-only call (memory-split CFG), then the cond call: the cond rows are kept
    cap = BottleneckCapture(mod, root)
    with cap:
        cap.clear()
        net(x[:2], transformer_options={"cond_or_uncond": [1]})
        net(x[2:], transformer_options={"cond_or_uncond": [0]})
        torch.testing.assert_close(cap.take(), full[2:])
    assert not mod._forward_hooks and not root._forward_pre_hooks  # removed on exit


def test_capture_on_the_digits_unet_and_error_without_bottleneck():
    from seeds_samplers.digits.denoiser import DigitsDenoiser
    from seeds_samplers.digits.unet import UNet

    d = DigitsDenoiser(UNet(), "eps")
    cap = capture_for(d)
    assert cap.module is d.net.middle_block
    with cap:
        cap.clear()
        d(torch.randn(3, 1, 32, 32), torch.full((3,), 2.0))
        f = cap.take()
    assert f.shape == (3, 8, 8)
    with pytest.raises(ValueError, match="time-only"):
        capture_for(AnalyticDenoiser())


# --- storage and mismatch checks ---------------------------------------------------------------
def _trained_like(sig, model_type="ve", mode="time", solver="amed"):
    p = AMEDPredictor(64, 0.01, 0.0)
    with torch.no_grad():
        p.fc_r.bias.fill_(-1.0)
    cfg = dict(solver=solver, afs=True, feature_mode=mode, feature_size=64, scale_dir=0.01, scale_time=0.0,
               sigmas=[float(s) for s in sig if s > 0], model_type=model_type, model_family="gmm", cfg=7.0,
               schedule="logsnr_uniform", max_order=3, prediction="data", lower_order_final=True)
    return p, cfg


def test_save_load_roundtrip_and_grid_mismatch(tmp_path):
    m, sig, x = _setup(steps=4)
    p, cfg = _trained_like(sig)
    path = save_predictor(tmp_path / "p.safetensors", p, cfg)
    assert path.with_suffix(".json").is_file()
    q = load_predictor(path)
    assert q.config["sigmas"] == cfg["sigmas"]
    out = sample_amed(m, x.clone(), sig, predictor=q, disable=True)
    r_out = sample_amed(m, x.clone(), sig, r=float(torch.sigmoid(torch.tensor(-1.0))), disable=True)
    torch.testing.assert_close(out, r_out, rtol=0, atol=1e-8)  # time-only, c = 1 at zero weights: fixed r
    other = SCHEDULES["logsnr_uniform"](6, m.seeds_model_type)
    with pytest.raises(ValueError, match="grid mismatch.*trained on 4 positive sigmas"):
        sample_amed(m, x.clone(), other, predictor=q, disable=True)
    shifted = sig.clone()
    shifted[1] *= 1.01
    with pytest.raises(ValueError, match=r"grid mismatch at sigma\[1\]"):
        sample_amed(m, x.clone(), shifted, predictor=q, disable=True)
    flow = AnalyticDenoiser(kind="flow")
    with pytest.raises(ValueError, match="model family mismatch|model type"):
        sample_amed(flow, x.clone() / 14.0, SCHEDULES["logsnr_uniform"](4, flow.seeds_model_type),
                    predictor=q, disable=True)
    with pytest.raises(ValueError, match="trained for the AMED-Solver"):
        sample_amed_plugin(m, x.clone(), sig, predictor=q, disable=True)
    with pytest.raises(ValueError, match="afs"):
        sample_amed(m, x.clone(), sig, predictor=q, afs=False, disable=True)
    with pytest.raises(ValueError, match="family mismatch"):
        check_compatible(q.config, model_family="SDXL")
    with pytest.raises(ValueError, match="time-only"):
        check_compatible(dict(q.config, feature_mode="bottleneck"), feature_available=False)
    with pytest.warns(UserWarning, match="CFG 7.0"):
        check_compatible(q.config, cfg_scale=4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_compatible(q.config, cfg_scale=7.0, model_family="gmm", model_type="ve", sigmas=sig.tolist())


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not a SEEDS AMED predictor"):
        load_predictor(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_predictor(junk)
    with pytest.raises(ValueError, match="not found"):
        load_predictor(tmp_path / "missing.safetensors")
    p, cfg = _trained_like(torch.tensor([2.0, 1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="lacks"):
        save_predictor(tmp_path / "x.safetensors", p, {k: v for k, v in cfg.items() if k != "sigmas"})


# --- distillation --------------------------------------------------------------------------
def test_training_reduces_the_distillation_loss_on_the_digits_model():
    from seeds_samplers.amed.train import TrainSettings, schedule_sigmas, train_predictor
    from seeds_samplers.digits.weights import weights_path

    if not weights_path("digits-eps").is_file():
        pytest.skip("digits-eps weights not built (python -m seeds_samplers train-digits --kind eps)")
    from seeds_samplers.digits.denoiser import load_digits_model

    torch.manual_seed(0)
    model = load_digits_model("eps")
    sig = schedule_sigmas(model, "logsnr_uniform", 3)
    s = TrainSettings(solver="amed", feature_mode="bottleneck", trajectories=16, batch=8, holdout=8,
                      teacher_substeps=1, lr=2e-2, seed=3)
    pred, cfg, hist = train_predictor(model, sig, s, latent_shape=(1, 32, 32))
    assert cfg["loss_after"] < 0.8 * cfg["loss_before"], (cfg["loss_before"], cfg["loss_after"])
    assert cfg["feature_size"] == 64 and cfg["sigmas"] == [float(v) for v in sig if v > 0]


def test_a_predictor_that_does_not_beat_its_start_is_not_written(tmp_path, capsys):
    """lr so small that no trained state can beat the untrained one: the command says so
    with both held-out losses and writes nothing; --keep-unimproved writes it marked."""
    from seeds_samplers.bench.amed_train import main

    out = tmp_path / "p.safetensors"
    args = ["--model", "gmm-vp", "--solver", "amed", "--feature-mode", "time", "--schedule", "logsnr_uniform",
            "--steps", "3", "--trajectories", "4", "--batch", "4", "--holdout", "4", "--evals", "1",
            "--teacher-substeps", "1", "--lr", "1e-9", "--threads", "1", "--out", str(out)]
    assert main(args) == 3 and not out.exists()
    said = capsys.readouterr().out
    assert "NOT WRITTEN" in said and "no improvement: held-out loss of the untrained predictor" in said
    assert main(args + ["--keep-unimproved"]) == 0
    cfg = load_predictor(out).config
    assert cfg["improved"] is False and cfg["loss_after"] == cfg["loss_before"] and cfg["best_round"] == 0
    r, c, a = load_predictor(out)(None, cfg["sigmas"][0], cfg["sigmas"][1], batch=1)
    assert float(r) == 0.5


# --- loss weighting (TrainSettings.loss) ----------------------------------------------------
def _weighting_case(loss, **kw):
    from seeds_samplers.amed.train import TrainSettings, schedule_sigmas, train_predictor

    m = AnalyticDenoiser(kind="vp_discrete")
    sig = schedule_sigmas(m, "logsnr_uniform", 4)
    s = TrainSettings(solver="euler", afs=False, feature_mode="time", teacher_substeps=2, trajectories=8,
                      batch=4, holdout=4, evals=1, lr=1e-3, seed=5, loss=loss, **kw)
    return m, sig, s, train_predictor(m, sig, s, latent_shape=(3, 32, 32))


@pytest.mark.parametrize("loss", ["paper", "relative", "final"])
def test_loss_weightings_equal_a_hand_computation_of_the_untrained_students_state_errors(loss):
    """The held-out per-interval errors of the untrained Euler plugin (r = 1/2: one Euler step to
    the geometric midpoint, one to the next sigma, from the teacher's state) computed here by
    hand, and the weighted held-out loss of each option from them: paper = their sum, relative
    = the number of intervals (each divided by itself), final = the last one."""
    from seeds_samplers.amed.train import teacher_batch

    m, sig, s, (_, cfg, _) = _weighting_case(loss)
    grid = [float(v) for v in sig if v > 0]
    g = torch.Generator().manual_seed(s.seed + 1)  # the held-out latents, as the trainer draws them
    y0 = (torch.randn((s.holdout, 3, 32, 32), generator=g, dtype=torch.float64) * grid[0]).float()
    call = lambda y, v: m(y, v.float()).to(y.dtype)  # noqa: E731
    tb = teacher_batch(call, grid, y0, s.teacher_substeps)
    hand = []
    for j, (a, b) in enumerate(zip(grid, grid[1:])):
        y, mid = tb.y[j], math.sqrt(a * b)
        ym = y + (mid - a) * (y - m(y, torch.full((4,), a))) / a
        y1 = ym + (b - mid) * (ym - m(ym, torch.full((4,), mid))) / mid
        hand.append(float((y1 - tb.y[j + 1]).pow(2).flatten(1).sum(1).mean()))
    assert len(hand) == 3 and hand[-1] != pytest.approx(hand[0], rel=0.1)
    np.testing.assert_allclose(cfg["heldout_intervals_before"], hand, rtol=1e-4)
    want = {"paper": [1.0, 1.0, 1.0], "relative": [1 / e for e in hand], "final": [0.0, 0.0, 1.0]}[loss]
    np.testing.assert_allclose(cfg["interval_weights"], want, rtol=1e-4)
    expected = {"paper": sum(hand), "relative": 3.0, "final": hand[-1]}[loss]
    assert cfg["loss"] == loss and cfg["loss_before"] == pytest.approx(expected, rel=1e-4)
    assert cfg["paper_loss_before"] == pytest.approx(sum(hand), rel=1e-4)
    from seeds_samplers.amed.train import distillation_loss

    untrained = AMEDPredictor(64, s.scale_dir, s.scale_time)
    assert distillation_loss(untrained, s, call, grid, [1.0] * 4, tb, weights=cfg["interval_weights"]) == \
        pytest.approx(expected, rel=1e-4)
    kept = cfg["heldout_intervals_after"]
    assert cfg["loss_after"] == pytest.approx(sum(w * e for w, e in zip(cfg["interval_weights"], kept)), rel=1e-9)


def test_zero_weight_intervals_take_no_optimiser_step(monkeypatch):
    """loss="final": one Adam step per round (the last interval's), not one per interval (Adam
    would move a zero-gradient interval on its momentum)."""
    steps = []
    real = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), real(self, *a, **k))[1])
    for loss, per_round in (("paper", 3), ("final", 1)):
        steps.clear()
        _, _, s, (_, cfg, hist) = _weighting_case(loss)
        assert len(steps) == per_round * s.rounds * s.epochs == per_round * len(hist)
    with pytest.raises(ValueError, match="loss must be one of"):
        _weighting_case("final-only")


def test_final_loss_trains_every_step_through_the_students_own_trajectory():
    """loss="final" on a multistep student: the gradient on fc_r's bias (it moves r of every
    step) equals the central difference of the last state's error over the whole student run;
    the last interval alone (states detached, the greedy per-interval form) gives another."""
    from seeds_samplers.amed.train import TrainSettings, _interval_losses, schedule_sigmas, teacher_batch

    m = AnalyticDenoiser(kind="vp_discrete")
    grid = [float(v) for v in schedule_sigmas(m, "logsnr_uniform", 4) if v > 0]
    s = TrainSettings(solver="ipndm", afs=True, feature_mode="time", max_order=4, scale_time=0.2, loss="final")
    call = lambda y, v: m(y, v)  # noqa: E731
    y0 = torch.randn((4, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * grid[0]
    tb = teacher_batch(call, grid, y0, 4)
    ones = [1.0] * len(grid)

    def fresh(bias: float = 0.0) -> AMEDPredictor:
        torch.manual_seed(0)
        p = AMEDPredictor(64, s.scale_dir, s.scale_time)
        with torch.no_grad():
            p.fc_r.bias.fill_(bias)
        return p

    def gradient(settings, weights) -> float:
        p = fresh()
        _interval_losses(p, settings, call, grid, ones, tb, None, torch.optim.SGD(p.parameters(), lr=1.0), weights)
        return -float(p.fc_r.bias.detach())  # one SGD step of size 1 from 0

    h = 1e-2
    fd = (float(_interval_losses(fresh(h), s, call, grid, ones, tb, None, None)[-1])
          - float(_interval_losses(fresh(-h), s, call, grid, ones, tb, None, None)[-1])) / (2 * h)
    through = gradient(s, [0.0, 0.0, 1.0])
    greedy = gradient(TrainSettings(**{**s.__dict__, "loss": "paper"}), [0.0, 0.0, 1.0])
    assert through == pytest.approx(fd, rel=2e-2), (through, fd)
    assert abs(greedy - fd) > 0.1 * abs(fd), (greedy, fd)


# --- the ComfyUI train node's loss input (nodes/amed.py, without ComfyUI) --------------------
def test_the_train_node_passes_its_loss_to_the_trainer_and_records_it(monkeypatch, tmp_path):
    """SS_AMED_Train's ``loss`` widget: the trainer's choices and default, the last widget (saved
    workflows fill by position), a tooltip with the trainer's description of every choice; the
    node trains with it (the host's training call replaced by the trainer on an analytic model):
    with ``final`` the held-out loss is the untrained student's last-interval error, with the
    default (and a workflow saved before the input existed) the paper's sum of them, and the
    file, its .json and the summary record which."""
    import inspect
    import json
    import types

    from seeds_samplers.amed.train import LOSSES, TrainSettings, schedule_sigmas, train_predictor
    from seeds_samplers.nodes import amed as A

    node = A.NODE_CLASS_MAPPINGS["SS_AMED_Train"]
    spec = node.INPUT_TYPES()
    choices, opts = spec["optional"]["loss"]
    assert choices == list(LOSSES) and opts["default"] == TrainSettings.loss == "paper"
    # the widgets in the order of the node function's arguments, loss the last
    assert list(spec["required"]) + list(spec["optional"]) == list(inspect.signature(node.train).parameters)[1:]
    assert list(spec["optional"])[-1] == "loss"
    for name in LOSSES:  # each choice with its description from amed.train.interval_weights
        (line,) = [t for t in opts["tooltip"].split("\n") if t.startswith(f"{name}: ")]
        assert len(line) > len(name) + 40

    m = AnalyticDenoiser(kind="vp_discrete")
    sigmas = schedule_sigmas(m, "logsnr_uniform", 4)
    given = []

    def train_in_comfy(model, positive, negative, sig, latent, cfg, settings, seed, progress=None):
        given.append(settings)
        pred, config, _ = train_predictor(m, sig, settings, latent_shape=tuple(latent["samples"].shape[1:]))
        return pred, config

    monkeypatch.setattr(A, "train_in_comfy", train_in_comfy)
    monkeypatch.setattr(A, "comfy_progress", lambda: None)
    monkeypatch.setattr(A, "register_model_folder", lambda: str(tmp_path))
    ms = types.SimpleNamespace(sigma_min=float(sigmas[-2]), sigma_max=float(sigmas[0]))
    model = types.SimpleNamespace(model=types.SimpleNamespace(model_config=type("SD15", (), {})()),
                                  get_model_object=lambda name: ms)
    widgets = {k: o["default"] for k, (t, o) in spec["required"].items() if "default" in o}
    widgets.update(solver="euler", afs=False, feature_mode="time", trajectories=8, batch=4, teacher_substeps=2,
                   lr=1e-3, seed=5)
    runs = {}
    for loss in ("final", None):  # None: a workflow saved before the input existed
        extra = {} if loss is None else {"loss": loss}
        pred, summary = node().train(model=model, positive=None, negative=None, sigmas=sigmas,
                                     latent_image={"samples": torch.zeros(1, 3, 32, 32)}, **widgets, **extra)
        cfg = pred.config
        saved = sorted(tmp_path.glob("amed_*.json"))[-1]
        assert json.loads(saved.read_text())["loss"] == cfg["loss"] == given[-1].loss == (loss or "paper")
        assert load_predictor(saved.with_suffix(".safetensors")).config["loss"] == cfg["loss"]
        assert f", loss {cfg['loss']}" in summary
        runs[cfg["loss"]] = cfg, summary
    final, paper = runs["final"][0], runs["paper"][0]
    # the same held-out set (same seed), scored by each loss
    assert final["heldout_intervals_before"] == pytest.approx(paper["heldout_intervals_before"], rel=1e-6)
    errors = paper["heldout_intervals_before"]
    assert final["interval_weights"] == [0.0] * (len(errors) - 1) + [1.0]
    assert final["loss_before"] == pytest.approx(errors[-1], rel=1e-6)
    assert paper["loss_before"] == pytest.approx(sum(errors), rel=1e-6) and errors[-1] < 0.9 * sum(errors)
    # only a loss other than the paper's adds the paper's loss to the summary
    assert "the paper's loss" in runs["final"][1] and "the paper's loss" not in runs["paper"][1]
