"""A random-weight SD1.5 checkpoint for the real-ComfyUI tests, built with ComfyUI's own
model classes, so ComfyUI loads and detects it as it would a downloaded one.

:func:`ensure_checkpoint` builds it once, in a subprocess with the checkout's Python, and
caches it outside the repository. By hand (with ComfyUI's requirements installed)::

    cd $COMFYUI_ROOT && PYTHONPATH=/path/to/this/repo/tests python -m support.comfy_checkpoint OUT.safetensors

The checkout is the working directory of that run, so ``import comfy`` finds it the way
ComfyUI's own ``main.py`` does: nothing here edits ``sys.path``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Dict, Tuple

# A one-level UNet with SD1.5's channel count, context size and conv-projection
# transformers: ComfyUI's model detection takes it for SD15 (make_checkpoint checks that),
# and at ~26 M parameters it runs on a CPU in seconds.
CHECKPOINT = "ss_random_sd15.safetensors"  # its file name in the server's checkpoints folder
SMALL_SD15_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1],
    channel_mult=[1], transformer_depth=[1], transformer_depth_output=[1, 1], transformer_depth_middle=1,
    context_dim=768, num_heads=8, num_head_channels=-1, use_linear_in_transformer=False,
    use_spatial_transformer=True, legacy=False, adm_in_channels=None, use_temporal_resblock=False,
    use_temporal_attention=False, use_checkpoint=False,
)


def make_checkpoint(path: str, seed: int = 1234) -> None:
    """Write a random-weight SD1.5 checkpoint (fp16 safetensors) to ``path`` (run where
    ``import comfy`` finds the checkout: see the module docstring)."""
    from comfy.cli_args import args

    args.cpu = True
    import torch
    import safetensors.torch
    import comfy.ops
    import comfy.clip_model
    import comfy.model_detection
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ops = comfy.ops.disable_weight_init
    shapes: Dict[str, Tuple[Tuple[int, ...], torch.dtype]] = {}

    def collect(prefix: str, module: torch.nn.Module) -> None:
        for k, v in module.state_dict().items():
            shapes[prefix + k] = (tuple(v.shape), v.dtype)

    unet = UNetModel(**SMALL_SD15_UNET, device="meta", operations=ops)
    collect("model.diffusion_model.", unet)
    with open(os.path.join(os.path.dirname(comfy.ops.__file__), "sd1_clip_config.json")) as f:
        clip_config = json.load(f)
    clip = comfy.clip_model.CLIPTextModel(clip_config, torch.float16, "meta", ops)
    collect("cond_stage_model.transformer.", clip)
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    with torch.device("meta"):
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    collect("first_stage_model.", vae)

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, (shape, dtype) in shapes.items():
        if not dtype.is_floating_point:
            sd[key] = torch.arange(shape[-1]).expand(shape).contiguous().to(dtype)
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "bias" or len(shape) == 0:
            t = torch.zeros(shape)
        elif len(shape) == 1:  # norm scales
            t = torch.ones(shape)
        elif "embedding" in key:
            t = torch.randn(shape, generator=g) * 0.02
        else:
            fan_in = int(torch.tensor(shape[1:]).prod())
            t = torch.randn(shape, generator=g) * (0.5 / math.sqrt(fan_in))
        sd[key] = t.to(torch.float16)

    unet_sd = {k[len("model.diffusion_model."):]: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    detected = comfy.model_detection.model_config_from_unet(unet_sd, "")
    if type(detected).__name__ != "SD15":
        raise RuntimeError(f"random checkpoint detected as {type(detected).__name__}, not SD15")
    tmp = path + ".part"
    safetensors.torch.save_file(sd, tmp)
    os.replace(tmp, path)


def ensure_checkpoint(root: str, cache_dir: str, python: str = sys.executable, timeout: float = 600) -> str:
    """The random checkpoint in ``cache_dir``, built on first use by ``python`` with the
    ComfyUI checkout ``root`` as its working directory."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, CHECKPOINT)
    if not os.path.exists(path):
        tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
        subprocess.run([python, "-m", "support.comfy_checkpoint", path], check=True,
                       cwd=root, env=env, timeout=timeout)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m support.comfy_checkpoint OUT.safetensors")
    make_checkpoint(sys.argv[1])

