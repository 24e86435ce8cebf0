"""ComfyUI nodes that present the shipped digits models (``digits/``) as an ordinary ComfyUI
MODEL, so every sampler of the pack (and ComfyUI's own) can be tried on a CPU in seconds,
with nothing to download.

* ``SS_DigitsLoader`` -- **Digits Model Loader (SS)**: ``digits-eps``, ``digits-flow`` or
  ``digits-cond`` as a MODEL built the way ComfyUI builds its own (a ``comfy.model_base.
  BaseModel`` with a ``ModelPatcher``), so KSampler, SamplerCustom, CFG and the model-patching
  nodes run it unchanged. Its ``model_sampling`` is ComfyUI's own, picked by model type from
  ``comfy.model_base.model_sampling``: SD's discrete eps schedule (scaled-linear betas
  0.00085 -> 0.012 over 1,000 timesteps) for eps/cond, discrete flow with shift 3 and
  timestep = 1000 sigma for flow -- the schedules the networks were trained on
  (digits/schedule.py). ComfyUI feeds the network its own timestep: for the eps schedule
  the nearest of the 1,000 table entries (the digits package's own wrapper interpolates in
  log sigma between them; both agree on the table).
* ``SS_DigitsLatent`` -- **Empty Digits Latent (SS)**: zeros of the models' shape
  ``[batch, 1, 32, 32]`` (pixels, no VAE).
* ``SS_DigitsLabel`` -- **Digits Label (SS)**: a CONDITIONING that asks ``digits-cond`` for
  one digit, or ``none`` for its unconditional ("no label") prediction. Wire a digit to
  ``positive`` and ``none`` to ``negative``: ComfyUI's CFG then computes
  ``uncond + cfg (cond - uncond)`` with its own batching. The unconditional models take
  ``none`` only.
* ``SS_DigitsDecode`` -- **Digits Decode (SS)**: LATENT -> IMAGE (pixels in [-1, 1] mapped
  to [0, 1], grey to RGB, enlarged by whole pixels for viewing), for SaveImage / PreviewImage.

No ``comfy`` or ``digits`` import at module level: the definitions load without a host and
the digits package only when a node runs.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import torch

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "MODEL_NAMES", "LABELS", "NO_LABEL",
           "comfy_digits_model", "label_conditioning", "decode_digits"]

NODE_CATEGORY = "sampling/digits (try without a download)"
MODEL_NAMES = ("digits-eps", "digits-flow", "digits-cond")  # file stems in digits/weights/
NO_LABEL = "none"
LABELS = tuple(str(d) for d in range(10)) + (NO_LABEL,)
LABEL_KEY = "ss_digits_label"  # conditioning dict key; None = no label
IMAGE_SIZE = 32  # the digits models' side in pixels (digits/data.py)
FLOW_TIMESTEP_SCALE = 1000  # the flow network's timestep is 1000 sigma (digits/unet.py)


# --- the MODEL -------------------------------------------------------------------------------
def _network_module(net: torch.nn.Module) -> torch.nn.Module:
    """The digits U-Net in the call signature ComfyUI's BaseModel uses for its diffusion model:
    ``(x, timesteps, context=..., control=..., transformer_options=..., **extra_conds)``; the
    label arrives as the ``labels`` extra cond."""

    class DigitsDiffusionModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        @property
        def dtype(self) -> torch.dtype:
            return next(self.net.parameters()).dtype

        def forward(self, x, timesteps, context=None, control=None, transformer_options=None, labels=None,
                    **kwargs):
            # labels None: an unconditional network (a conditional one always gets labels, see extra_conds)
            return self.net(x, timesteps, labels)

    return DigitsDiffusionModel()


def _label_tensor(label: Optional[int], num_classes: int, model_name: str) -> Optional[torch.Tensor]:
    """The label index the network reads (``num_classes`` = no label), None for an
    unconditional network; a digit asked of an unconditional model is refused."""
    if not num_classes:
        if label is not None:
            raise ValueError(f"{model_name} is unconditional: give it the label {NO_LABEL!r} (Digits Label (SS)), "
                             "or load digits-cond to ask for a digit")
        return None
    return torch.tensor([num_classes if label is None else int(label)], dtype=torch.long)


def comfy_digits_model(name: str) -> Any:
    """The shipped ``name`` (one of :data:`MODEL_NAMES`) as a ComfyUI ``ModelPatcher`` (a MODEL).

    Needs ComfyUI importable (``comfy``). The network's weights are the shipped float32
    safetensors; the model stays float32 (the network is 2 MB)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown digits model {name!r}; one of {MODEL_NAMES}")
    import comfy.conds
    import comfy.latent_formats
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models_base

    from ..digits.denoiser import MODELS, load_digits_model
    from ..digits.schedule import FLOW_SHIFT

    kind = name.split("-", 1)[1]
    denoiser = load_digits_model(kind)
    num_classes = denoiser.num_classes
    flow = MODELS[kind] == "flow"

    class DigitsLatentFormat(comfy.latent_formats.LatentFormat):
        latent_channels = 1  # grey pixels, no VAE: scale 1, and the preview maps [-1, 1] to grey
        latent_rgb_factors = [[1.0, 1.0, 1.0]]

    class DigitsConfig(comfy.supported_models_base.BASE):
        unet_config = {"disable_unet_model_creation": True}  # the network is set below
        unet_extra_config = {}
        latent_format = DigitsLatentFormat
        # read by ComfyUI's ModelSamplingDiscrete (beta schedule defaults: SD's scaled-linear
        # 0.00085 -> 0.012, 1,000 steps, as digits/schedule.py) or ModelSamplingDiscreteFlow
        sampling_settings = {"shift": FLOW_SHIFT, "multiplier": FLOW_TIMESTEP_SCALE} if flow else {}
        memory_usage_factor = 0.05  # ComfyUI's per-pixel memory estimate, scaled for a 2 MB network

    class DigitsModel(comfy.model_base.BaseModel):
        def extra_conds(self, **kwargs):
            if LABEL_KEY not in kwargs:
                raise ValueError(f"{name} takes its conditioning from Digits Label (SS) (a digit or {NO_LABEL!r}), "
                                 "not from a text encoder")
            labels = _label_tensor(kwargs[LABEL_KEY], num_classes, name)
            return {} if labels is None else {"labels": comfy.conds.CONDRegular(labels)}

    model_type = comfy.model_base.ModelType.FLOW if flow else comfy.model_base.ModelType.EPS
    config = DigitsConfig(DigitsConfig.unet_config)
    offload = comfy.model_management.unet_offload_device()
    model = DigitsModel(config, model_type=model_type, device=offload)
    model.diffusion_model = _network_module(denoiser.net)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=offload)


def label_conditioning(label: str) -> List[list]:
    """CONDITIONING asking for ``label`` (a digit ``"0"``..``"9"`` or ``"none"``). It carries
    no text embedding (``None``, which ComfyUI's sampler accepts); the label travels in the
    entry's options, which conditioning nodes copy along."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    return [[None, {LABEL_KEY: None if label == NO_LABEL else int(label)}]]


def decode_digits(samples: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """ComfyUI IMAGE ``[B, H, W, 3]`` in [0, 1] of digits latents ``[B, 1, 32, 32]`` in
    [-1, 1], each pixel repeated ``scale`` x ``scale`` times."""
    if samples.ndim != 4 or samples.shape[1] != 1:
        raise ValueError(f"digits latents are [batch, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], got {list(samples.shape)}: "
                         "decode latents of a digits model only")
    img = ((samples.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    if scale > 1:
        img = img.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return img.expand(-1, 3, -1, -1).movedim(1, -1).contiguous()


# --- nodes -----------------------------------------------------------------------------------
def _node(node_id: str, inputs: Dict[str, Any], returns: Tuple[str, ...], names: Tuple[str, ...],
          tooltips: Tuple[str, ...], run, description: str) -> type:
    class Node:
        RETURN_TYPES = returns
        RETURN_NAMES = names
        OUTPUT_TOOLTIPS = tooltips
        FUNCTION = "run"
        CATEGORY = NODE_CATEGORY
        DESCRIPTION = description

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": copy.deepcopy(inputs)}

        def run(self, **kwargs):
            return run(**kwargs)

    Node.__name__ = Node.__qualname__ = node_id
    return Node


def _build() -> Tuple[Dict[str, type], Dict[str, str]]:
    loader = _node(
        "SS_DigitsLoader",
        {"model_name": (list(MODEL_NAMES), {"default": MODEL_NAMES[0], "tooltip": (
            "digits-eps: SD's discrete eps schedule (as SD1.5). digits-flow: rectified flow, shift 3 (as SD3 / "
            "Flux). digits-cond: eps with a digit label, for CFG (Digits Label (SS) on positive and negative). "
            "Small networks trained on 4,000 MNIST digits, shipped with the pack.")})},
        ("MODEL",), ("model",), ("A ComfyUI model: KSampler, SamplerCustom and the schedule nodes run it.",),
        lambda model_name: (comfy_digits_model(model_name),),
        "Loads a small trained digits model shipped with the pack (32x32 grey images): try every sampler on a "
        "CPU in seconds without downloading a checkpoint.")
    latent = _node(
        "SS_DigitsLatent",
        {"batch_size": ("INT", {"default": 8, "min": 1, "max": 256,
                                "tooltip": "How many digits to draw at once."})},
        ("LATENT",), ("latent",), ("Zeros of the digits models' shape (1 x 32 x 32 pixels; no VAE).",),
        lambda batch_size: ({"samples": torch.zeros(int(batch_size), 1, IMAGE_SIZE, IMAGE_SIZE)},),
        "The empty latent for the digits models.")
    label = _node(
        "SS_DigitsLabel",
        {"label": (list(LABELS), {"default": "3", "tooltip": (
            f"The digit digits-cond should draw, or {NO_LABEL!r}: its unconditional prediction (use it for "
            f"negative; the unconditional models take {NO_LABEL!r} only).")})},
        ("CONDITIONING",), ("conditioning",), ("Conditioning for positive or negative of a digits model.",),
        lambda label: (label_conditioning(label),),
        "Conditioning for the digits models: a digit for positive, 'none' for negative; the sampler's cfg "
        "scales the difference.")
    decode = _node(
        "SS_DigitsDecode",
        {"samples": ("LATENT", {"tooltip": "Latents of a digits model."}),
         "scale": ("INT", {"default": 4, "min": 1, "max": 16,
                           "tooltip": "Enlarge each pixel to scale x scale for viewing (1 = 32 x 32)."})},
        ("IMAGE",), ("image",), ("The digits as an image for Save Image / Preview Image.",),
        lambda samples, scale: (decode_digits(samples["samples"], int(scale)),),
        "Turns digits latents (pixels in [-1, 1]) into an image.")
    titles = {"SS_DigitsLoader": "Digits Model Loader (SS)", "SS_DigitsLatent": "Empty Digits Latent (SS)",
              "SS_DigitsLabel": "Digits Label (SS)", "SS_DigitsDecode": "Digits Decode (SS)"}
    classes = {cls.__name__: cls for cls in (loader, latent, label, decode)}
    return classes, titles


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _build()
