"""AMED in a real ComfyUI, in-process: the bottleneck hook takes the *conditional* rows of
ComfyUI's batched CFG call, training runs through ComfyUI's own guider (conditioning, CFG,
model loading) with gradients through the frozen U-Net, and the trained predictor samples
through the AMED sampler node's function.

Opt-in: COMFYUI_ROOT=/work/comfyui /work/venv-comfy/bin/python -m pytest tests/test_amed_comfyui.py
(a ComfyUI checkout and a Python with its requirements); skipped otherwise.
"""

from __future__ import annotations

import math

import pytest

from support.comfy_checkpoint import SMALL_SD15_UNET


@pytest.fixture(scope="module")
def comfy_model(comfyui_imports):
    from comfy.cli_args import args

    args.cpu = True
    import torch
    import comfy.ops
    import comfy.sd
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    torch.manual_seed(0)
    unet = UNetModel(**SMALL_SD15_UNET, operations=comfy.ops.disable_weight_init)
    g = torch.Generator().manual_seed(1)
    sd = {}
    for k, v in unet.state_dict().items():
        if v.is_floating_point() and v.ndim > 1:
            sd[k] = torch.randn(v.shape, generator=g) * (0.5 / max(1, v[0].numel()) ** 0.5)
        elif v.is_floating_point() and k.endswith("weight"):
            sd[k] = torch.ones_like(v)
        else:
            sd[k] = torch.zeros_like(v) if v.is_floating_point() else v
    patcher = comfy.sd.load_diffusion_model_state_dict(sd)
    assert type(patcher.model.model_config).__name__ == "SD15"
    g = torch.Generator().manual_seed(2)
    positive = [[torch.randn(1, 77, 768, generator=g), {}]]
    negative = [[torch.randn(1, 77, 768, generator=g), {}]]
    return patcher, positive, negative


def _run_probe(patcher, positive, negative, fn, cfg=3.0, batch=2, steps=4):
    import torch
    import comfy.sample
    import comfy.samplers

    latent = torch.zeros(batch, 4, 8, 8)
    sampler = comfy.samplers.KSAMPLER(fn, {})
    sigmas = comfy.samplers.calculate_sigmas(patcher.get_model_object("model_sampling"), "normal", steps)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(3))
    return comfy.sample.sample_custom(patcher, noise, cfg, sampler, sigmas, positive, negative, latent, seed=5,
                                      disable_pbar=True), sigmas


def test_hook_takes_the_conditional_rows_of_the_cfg_batch(comfy_model):
    import torch

    from seeds_samplers.samplers.amed_capture import capture_for

    patcher, positive, negative = comfy_model
    seen = {}

    def probe(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        cap = capture_for(model_k)
        labels = []
        with cap:
            h = cap.root.register_forward_pre_hook(
                lambda m, a, kw: labels.append(list(kw.get("transformer_options", {}).get("cond_or_uncond", []))),
                with_kwargs=True)
            cap.clear()
            s = sigmas[1] * x.new_ones([x.shape[0]])
            model_k(x, s, **extra_args)
            seen["feat"] = cap.take()
            h.remove()
        seen["labels"], seen["x"], seen["sigma"] = labels, x.clone(), s
        # references: the same U-Net evaluated on one conditioning at a time, no labels
        base = patcher.model
        ref = {}
        grab = cap.module.register_forward_hook(lambda m, i, o: ref.__setitem__("f", o.float().mean(1)))
        for name, c in (("cond", positive), ("uncond", negative)):
            base.apply_model(x, s, c_crossattn=c[0][0].repeat(x.shape[0], 1, 1))
            seen[name] = ref["f"]
        grab.remove()
        return x

    _run_probe(patcher, positive, negative, probe)
    assert any(0 in lab and 1 in lab for lab in seen["labels"]), \
        f"ComfyUI did not batch cond and uncond together ({seen['labels']}); the test would not cover the batch order"
    feat = seen["feat"]
    assert feat.shape == seen["cond"].shape == (2, 8, 8)
    torch.testing.assert_close(feat, seen["cond"], rtol=1e-4, atol=1e-5)
    assert (feat - seen["uncond"]).abs().max() > 1e-3


def test_training_and_sampling_through_comfyui(comfy_model, tmp_path):
    import torch
    import comfy.samplers

    from seeds_samplers.amed.storage import load_predictor, save_predictor
    from seeds_samplers.amed.train import TrainSettings
    from seeds_samplers.nodes import node_definitions
    from seeds_samplers.nodes.amed import amed_sampler_function, train_in_comfy

    patcher, positive, negative = comfy_model
    ms = patcher.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 4)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    s = TrainSettings(solver="amed", trajectories=8, batch=4, holdout=4, teacher_substeps=2, lr=2e-2)
    pred, cfg = train_in_comfy(patcher, positive, negative, sigmas, latent, 3.0, s, seed=0)
    assert cfg["feature_mode"] == "bottleneck" and cfg["feature_size"] == 64
    assert math.isfinite(cfg["loss_before"]) and math.isfinite(cfg["loss_after"])
    # gradients reached the predictor through ComfyUI's frozen U-Net: the trained states score
    # otherwise than the untrained one on the held-out set (random weights here, so the loss
    # need not fall; the kept predictor is the best state, the untrained one unless a trained
    # state beat it; tests/test_amed.py checks a fall on digits)
    assert any(abs(loss - cfg["loss_before"]) > 1e-9 * cfg["loss_before"] for _, loss in cfg["heldout_curve"][1:])
    r, _, _ = pred(None, cfg["sigmas"][0], cfg["sigmas"][1], batch=1)
    assert (abs(float(r) - 0.5) > 1e-6) == cfg["improved"]
    cfg.update(model_family="SD15", cfg=3.0)
    pred.config = dict(cfg)
    pred = load_predictor(save_predictor(tmp_path / "p.safetensors", pred, cfg))

    calls = []

    def counting(fn):
        def wrapped(model_k, x, sig, **kw):
            inner = model_k.__call__

            class Count:
                def __init__(self, m):
                    self.m = m
                    self.inner_model = m.inner_model

                def __call__(self, *a, **k):
                    calls.append(1)
                    return self.m(*a, **k)
            return fn(Count(model_k), x, sig, **kw)
        return wrapped

    out, _ = _run_probe(patcher, positive, negative, counting(amed_sampler_function(pred)), batch=1, steps=4)
    assert torch.isfinite(out).all()
    assert len(calls) == 2 * 3 - 1 + 1  # 3 AMED steps with AFS, then the final denoise
    # another schedule: a clear error naming the grid mismatch
    with pytest.raises(ValueError, match="grid mismatch"):
        _run_probe(patcher, positive, negative, amed_sampler_function(pred), batch=1, steps=6)
    # another CFG: a warning, not an error
    with pytest.warns(UserWarning, match="CFG"):
        _run_probe(patcher, positive, negative, amed_sampler_function(pred), batch=1, steps=4, cfg=5.0)
    classes = node_definitions()[0]
    assert {"SS_Sampler_amed_solver", "SS_Sampler_amed_plugin", "SS_AMED_Train", "SS_AMED_Load"} <= set(classes)
    assert "predictor" in classes["SS_Sampler_amed_solver"].INPUT_TYPES()["optional"]


def test_train_node_trains_with_its_loss_input_through_comfyui(comfy_model, tmp_path, monkeypatch):
    """The AMED Train node, run as ComfyUI runs it (its own progress bar, ComfyUI's guider), with
    loss=final: the held-out loss it selects on is the last interval's error of the untrained
    student, not the paper's sum, and the saved .json and the summary say so."""
    import json

    import torch
    import comfy.samplers

    from seeds_samplers.nodes import amed as A

    patcher, positive, negative = comfy_model
    monkeypatch.setattr(A, "register_model_folder", lambda: str(tmp_path))  # not into the host's models/
    sigmas = comfy.samplers.calculate_sigmas(patcher.get_model_object("model_sampling"), "normal", 4)
    node = A.NODE_CLASS_MAPPINGS["SS_AMED_Train"]
    assert list(node.INPUT_TYPES()["optional"])[-1] == "loss"
    pred, summary = node().train(patcher, positive, negative, sigmas, {"samples": torch.zeros(1, 4, 8, 8)}, 3.0,
                                 "amed", True, "bottleneck", 0.01, 0.0, 1, 8, 4, 2, 2e-2, 0, "loss_final",
                                 1, "final")
    (saved,) = tmp_path.glob("loss_final_*.json")
    cfg = json.loads(saved.read_text())
    errors = cfg["heldout_intervals_before"]
    assert cfg["loss"] == pred.config["loss"] == "final"
    assert cfg["interval_weights"] == [0.0] * (len(errors) - 1) + [1.0]
    assert cfg["loss_before"] == pytest.approx(errors[-1], rel=1e-6)
    assert cfg["paper_loss_before"] == pytest.approx(sum(errors)) and cfg["loss_before"] < 0.99 * sum(errors)
    assert "loss final" in summary and "the paper's loss" in summary
    assert str(saved.with_suffix(".safetensors")) in summary
