"""ComfyUI nodes for AMED (Zhou et al., CVPR 2024; docs/amed.md).

* ``SS_Sampler_amed_solver`` / ``SS_Sampler_amed_plugin`` -- the registry's generated
  AMED-Solver / AMED-Plugin sampler nodes, extended (:func:`.definitions.extend_sampler_node`)
  with an optional ``predictor`` input. With a predictor, its stored configuration (solver,
  base, AFS, orders, grid) decides and the solver widgets are ignored; the sampler checks
  the grid, model type and family, and warns for another CFG scale. Without one the node
  runs its solver with the widget values (fixed r).
* ``SS_AMED_Train`` -- **AMED Train Predictor (SS)**: trains a predictor by distillation on
  the loaded MODEL with the user's conditioning, CFG and SIGMAS (ComfyUI prepares the model
  and conditioning exactly as for sampling; the training runs inside that call with
  gradients through the frozen U-Net), saves it into ``models/amed`` (registered with
  ``folder_paths``) and outputs it.
* ``SS_AMED_Load`` -- **AMED Load Predictor (SS)**: lists ``models/amed``.

No ``comfy`` import at module level: the definitions can be inspected without a host.
Wire-in: the predictor extension registered at import; ``NODE_CLASS_MAPPINGS`` /
``NODE_DISPLAY_NAME_MAPPINGS`` below (train, load), merged after the generated mappings;
:func:`register_model_folder` once when ComfyUI loads the pack.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ..samplers.amed import DEFAULT_ORDERS, sample_amed, sample_amed_plugin
from ..samplers.amed_core import AMED_SOLVERS, MAX_ORDERS
from ..samplers.registry import SAMPLERS
from .definitions import NodeExtension, extend_sampler_node
from .model_type import comfy_model_type

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "register_model_folder", "comfyui_setup", "FOLDER_NAME",
           "AMED_TYPE", "amed_sampler_function", "train_in_comfy"]

log = logging.getLogger("seeds_samplers")

AMED_TYPE = "AMED_PREDICTOR"
FOLDER_NAME = "amed"
CATEGORY = "sampling/custom_sampling/amed"


# --- host helpers (comfy imported lazily) ---------------------------------------------------
def register_model_folder() -> Optional[str]:
    """Register ``models/amed`` with ``folder_paths`` (idempotent); returns its path."""
    try:
        import folder_paths
    except ImportError:
        return None
    if FOLDER_NAME not in folder_paths.folder_names_and_paths:
        path = os.path.join(folder_paths.models_dir, FOLDER_NAME)
        folder_paths.folder_names_and_paths[FOLDER_NAME] = ([path], {".safetensors"})
    return folder_paths.get_folder_paths(FOLDER_NAME)[0]


def _predictor_files() -> List[str]:
    try:
        import folder_paths
    except ImportError:
        return []
    register_model_folder()
    return folder_paths.get_filename_list(FOLDER_NAME)


def model_family(model_patcher: Any) -> Optional[str]:
    """ComfyUI's model family (the supported-model class name, e.g. ``SD15``, ``SDXL``)."""
    base = getattr(model_patcher, "model", None)
    cfg = getattr(base, "model_config", None)
    if cfg is not None:
        return type(cfg).__name__
    return type(base).__name__ if base is not None else None


def _guider_info(model_k: Any) -> Tuple[Optional[str], Optional[float]]:
    guider = getattr(model_k, "inner_model", None)
    patcher = getattr(guider, "model_patcher", None)
    cfg = getattr(guider, "cfg", None)
    return model_family(patcher) if patcher is not None else None, (float(cfg) if cfg is not None else None)


def amed_sampler_function(predictor: Any, stop_at_sigma_min: bool = False):
    """The k-diffusion-style function ComfyUI's KSAMPLER calls for a trained predictor."""
    from ..amed.storage import check_compatible

    cfg = predictor.config

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        family, cfg_scale = _guider_info(model)
        check_compatible(cfg, model_family=family, cfg_scale=cfg_scale)
        fn = sample_amed if cfg["solver"] == "amed" else sample_amed_plugin
        options.setdefault("model_type", comfy_model_type(model))
        return fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                  predictor=predictor, stop_at_sigma_min=stop_at_sigma_min, **options)

    sample.__name__ = "sample_ss_amed_trained"
    return sample


# --- the sampler nodes: the generated ones, extended -----------------------------------------
def _with_predictor(spec: Any, widgets: Dict[str, Any], extras: Dict[str, Any]) -> Optional[Callable]:
    """A connected predictor decides (only ``stop_at_sigma_min`` of the widgets applies);
    without one the node runs its solver with the widget values."""
    predictor = extras.get("predictor")
    if predictor is None:
        return None
    return amed_sampler_function(predictor, bool(widgets.get("stop_at_sigma_min", False)))


PREDICTOR_INPUT = NodeExtension(
    inputs={"predictor": (AMED_TYPE, {"tooltip": "A trained AMED predictor; without one the sampler uses the fixed r."})},
    description=("Connect a predictor (AMED Train / Load Predictor) to use the learned steps: its stored solver, "
                 "base, AFS and grid then decide and the solver widgets are ignored (only stop_at_sigma_min "
                 "applies). The SIGMAS must be the ones it was trained on."),
    sampler=_with_predictor,
)

for _amed in (spec for spec in SAMPLERS.values() if spec.family == "amed"):
    extend_sampler_node(_amed.id, PREDICTOR_INPUT)


# --- training -------------------------------------------------------------------------------
def _make_weights_trainable_through(model_k: Any) -> None:
    """ComfyUI loads weights under ``torch.inference_mode``; autograd cannot save inference
    tensors for the backward pass through the frozen U-Net. Swap them for normal copies
    (same values, still frozen); ComfyUI's patch/unpatch bookkeeping sets weights by name,
    so restoring later works as before."""
    patcher = getattr(getattr(model_k, "inner_model", None), "model_patcher", None)
    module = getattr(patcher, "model", None)
    if not isinstance(module, torch.nn.Module):
        return
    for mod in module.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_inference():
                mod._parameters[name] = torch.nn.Parameter(p.clone(), requires_grad=False)
        for name, b in list(mod._buffers.items()):
            if b is not None and b.is_inference():
                mod._buffers[name] = b.clone()


def train_in_comfy(model: Any, positive: Any, negative: Any, sigmas: torch.Tensor, latent: Dict[str, Any],
                   cfg: float, settings: Any, seed: int, progress=None) -> Tuple[Any, dict]:
    """Train a predictor on a ComfyUI MODEL: ComfyUI's own guider prepares conditioning, CFG and
    model loading; the training runs as its 'sampler' (as ComfyUI's LoRA trainer does)."""
    import comfy.sample
    import comfy.samplers

    from ..amed.train import train_predictor

    box: List[Any] = []

    def trainer(model_k, noise, sigmas_, extra_args=None, callback=None, disable=None):
        shape = tuple(noise.shape[1:])
        sigma0 = float(sigmas_[0])
        work = torch.float32 if noise.dtype in (torch.float16, torch.bfloat16) else noise.dtype

        def prior(n: int, g: torch.Generator) -> torch.Tensor:
            return torch.randn((n,) + shape, generator=g, dtype=torch.float64) * sigma0

        with torch.inference_mode(False), torch.enable_grad():
            _make_weights_trainable_through(model_k)
            box.append(train_predictor(model_k, sigmas_.detach().clone(), settings, prior=prior,
                                       extra_args=dict(extra_args or {}), model_type=comfy_model_type(model_k),
                                       device=noise.device, dtype=work, progress=progress))
        return noise

    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = torch.zeros_like(latent_image)
    sampler = comfy.samplers.KSAMPLER(trainer, {})
    with torch.inference_mode(False):
        comfy.sample.sample_custom(model, noise, float(cfg), sampler, sigmas, positive, negative, latent_image,
                                   seed=int(seed), disable_pbar=True)
    pred, config, history = box[0]
    return pred, config


def comfy_progress() -> Callable[[str, int, int, Optional[float]], None]:
    """The trainer's progress callback as ComfyUI's progress bar (one fill per phase: the
    held-out teacher, then each epoch); Cancel stops the training between batches."""
    import comfy.model_management
    import comfy.utils

    bars: Dict[str, Any] = {}

    def progress(phase: str, done: int, total: int, loss: Optional[float]) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        if phase not in bars:
            bars.clear()
            bars[phase] = comfy.utils.ProgressBar(max(1, total))
        bars[phase].update_absolute(done, total)

    return progress


def loss_tooltip() -> str:
    """The ``loss`` widget's tooltip: the trainer's own description (:func:`amed.train.loss_help`)."""
    from ..amed.train import loss_help

    return loss_help() + "\ndocs/amed.md says which loss the shipped predictors used and why."


def _train_node() -> type:
    from ..amed.storage import FEATURE_MODES
    from ..amed.train import LOSSES, TrainSettings

    defaults = TrainSettings()
    inputs = {
        "model": ("MODEL", {"tooltip": "The model to train for (its U-Net stays frozen)."}),
        "positive": ("CONDITIONING", {"tooltip": "Conditioning used while training (e.g. a typical prompt)."}),
        "negative": ("CONDITIONING", {"tooltip": "Negative conditioning for CFG."}),
        "sigmas": ("SIGMAS", {"tooltip": "The schedule you will sample with (same scheduler and steps): the "
                                         "predictor only works on exactly this grid."}),
        "latent_image": ("LATENT", {"tooltip": "An empty latent of the size you will sample at (shape only)."}),
        "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                          "tooltip": "The CFG scale you will sample with; the predictor is tuned for it."}),
        "solver": (list(AMED_SOLVERS), {"default": "amed", "tooltip": "amed = AMED-Solver; otherwise AMED-Plugin "
                   "on that base: dpm_2, euler, ipndm, dpmpp_2m (DPM-Solver++(2M)), deis (rhoAB)."}),
        "afs": ("BOOLEAN", {"default": True, "tooltip": "Analytical first step (saves one model call)."}),
        "feature_mode": (list(FEATURE_MODES), {"default": "bottleneck", "tooltip":
                         "bottleneck: reads the U-Net middle block (SD1.x/SDXL); time: a learned per-step "
                         "schedule without features (DiT / flow models such as SD3, Flux; faster)."}),
        "scale_dir": ("FLOAT", {"default": defaults.scale_dir, "min": 0.0, "max": 0.5, "step": 0.001,
                                "tooltip": "Direction-scale range (0 = off; paper 0.01)."}),
        "scale_time": ("FLOAT", {"default": defaults.scale_time, "min": 0.0, "max": 0.5, "step": 0.01,
                                 "tooltip": "Time-scale range (0 = off; paper 0 or 0.2)."}),
        "max_order": ("INT", {"default": 3, "min": 1, "max": 4, "tooltip": "ipndm/deis history 1-4 (official iPNDM "
                              "recipe: 4); dpmpp_2m order 1-3 (3 = DPM-Solver++(3M))."}),
        "trajectories": ("INT", {"default": 256, "min": 8, "max": 100000, "step": 8,
                                 "tooltip": "Training trajectories (paper 5k-10k; a few hundred already help)."}),
        "batch": ("INT", {"default": 8, "min": 1, "max": 512, "tooltip": "Trajectories per optimiser round."}),
        "teacher_substeps": ("INT", {"default": defaults.teacher_substeps, "min": 1, "max": 32,
                                     "tooltip": "Teacher steps (third-order Adams-Bashforth in sigma, 1 model call each) per sampling step."}),
        "lr": ("FLOAT", {"default": defaults.lr, "min": 1e-5, "max": 1.0, "step": 1e-4, "round": False,
                         "tooltip": "Adam learning rate (paper 5e-3)."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Seed of the training latents."}),
        "filename_prefix": ("STRING", {"default": "amed", "tooltip": "Saved as models/amed/<prefix>_NNNNN.safetensors."}),
    }

    # optional: saved workflows fill widgets by position (required widgets first), so inputs
    # added after a release go last here and older files keep their values
    optional = {
        "epochs": ("INT", {"default": defaults.epochs, "min": 1, "max": 64, "tooltip":
                   "Passes over the trajectories (the teacher runs once; later passes cost about a third)."}),
        "loss": (list(LOSSES), {"default": defaults.loss, "tooltip": loss_tooltip()}),
    }

    class AMEDTrain:
        RETURN_TYPES = (AMED_TYPE, "STRING")
        RETURN_NAMES = ("predictor", "summary")
        OUTPUT_TOOLTIPS = ("The trained predictor (also saved to models/amed).", "What was trained and the loss gain.")
        FUNCTION = "train"
        CATEGORY = CATEGORY
        OUTPUT_NODE = True
        DESCRIPTION = ("Trains an AMED predictor (Zhou et al. 2024) for this model, conditioning, CFG and schedule by "
                       "distillation from a finer solve, keeps the state with the lowest held-out loss and saves it "
                       "to models/amed. When no trained state beats the untrained predictor (the base solver), "
                       "the file is marked improved=false and the summary warns with both losses. Minutes on a GPU; see "
                       "docs/amed.md for costs.")

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": copy.deepcopy(inputs), "optional": copy.deepcopy(optional)}

        def train(self, model, positive, negative, sigmas, latent_image, cfg, solver, afs, feature_mode, scale_dir,
                  scale_time, max_order, trajectories, batch, teacher_substeps, lr, seed, filename_prefix,
                  epochs=defaults.epochs, loss=defaults.loss):
            from ..amed.storage import describe, save_predictor
            from ..amed.train import not_improved_message
            from ..samplers.model_types import model_type_from_model_sampling

            order = min(int(max_order), MAX_ORDERS["dpmpp_2m"]) if solver == "dpmpp_2m" else int(max_order)
            s = TrainSettings(solver=solver, afs=bool(afs), feature_mode=feature_mode, scale_dir=float(scale_dir),
                              scale_time=float(scale_time), max_order=order if solver in DEFAULT_ORDERS else 1,
                              trajectories=int(trajectories), batch=int(batch), epochs=int(epochs),
                              # held-out set: the default, but at most a quarter of the training size
                              holdout=min(TrainSettings.holdout, max(int(batch), int(trajectories) // 4)),
                              teacher_substeps=int(teacher_substeps), lr=float(lr), seed=int(seed) % (2**31),
                              loss=loss)
            s.check()
            pred, config = train_in_comfy(model, positive, negative, sigmas, latent_image, cfg, s, seed,
                                          comfy_progress())
            ms = model.get_model_object("model_sampling")
            config.update(model_family=model_family(model), cfg=float(cfg),
                          model_type=model_type_from_model_sampling(ms).kind,
                          schedule="comfyui sigmas", steps=len(sigmas) - 1,
                          latent_shape=list(latent_image["samples"].shape[1:]))
            pred.config = dict(config)
            folder = register_model_folder() or os.path.join(os.getcwd(), "models", FOLDER_NAME)
            prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", filename_prefix) or "amed"
            n = 1
            while os.path.exists(os.path.join(folder, f"{prefix}_{n:05d}.safetensors")):
                n += 1
            path = save_predictor(os.path.join(folder, f"{prefix}_{n:05d}.safetensors"), pred, config)
            # which loss chose the kept state; for another than the paper's, the paper's loss too
            what = f"{describe(config)}, loss {config['loss']}"
            paper = ("" if config["loss"] == "paper" else f"; the paper's loss {config['paper_loss_before']:.4g} -> "
                     f"{config['paper_loss_after']:.4g}")
            if not config["improved"]:
                # the kept predictor is the untrained one (the base solver); saved, marked so
                trained = min(v for _, v in config["heldout_curve"][1:])
                summary = (f"WARNING: {what}: {not_improved_message(config['loss_before'], trained)}. "
                           f"Saved {path} marked improved=false (it is the untrained predictor). Try more "
                           f"trajectories, more epochs or another lr.")
                log.warning("SEEDS Samplers: %s", summary)
                return (pred, summary)
            summary = (f"{what}; held-out distillation loss {config['loss_before']:.4g} (untrained) -> "
                       f"{config['loss_after']:.4g} (x {config['loss_after'] / config['loss_before']:.3f}, best of "
                       f"{len(config['heldout_curve']) - 1} checks){paper} in {config['train_seconds']} s; "
                       f"saved {path}")
            log.info("SEEDS Samplers: %s", summary)
            return (pred, summary)

    AMEDTrain.__name__ = AMEDTrain.__qualname__ = "SS_AMED_Train"
    return AMEDTrain


def _load_node() -> type:
    class AMEDLoad:
        RETURN_TYPES = (AMED_TYPE,)
        RETURN_NAMES = ("predictor",)
        FUNCTION = "load"
        CATEGORY = CATEGORY
        DESCRIPTION = "Loads an AMED predictor from models/amed (safetensors written by AMED Train Predictor " \
                      "or by `python -m seeds_samplers amed-train`)."

        @classmethod
        def INPUT_TYPES(cls):
            folder = register_model_folder() or os.path.join("ComfyUI", "models", FOLDER_NAME)
            files = _predictor_files()
            hint = (f"A predictor file in {folder}; it must match the model, schedule and steps." if files else
                    f"No predictor yet: put .safetensors predictors into {folder} (AMED Train Predictor saves "
                    f"there; `python -m seeds_samplers amed-train --out {os.path.join(folder, 'NAME.safetensors')}` "
                    f"writes one) and refresh the page.")
            return {"required": {"predictor_name": (files, {"tooltip": hint})}}

        def load(self, predictor_name):
            import folder_paths

            from ..amed.storage import load_predictor

            register_model_folder()
            return (load_predictor(folder_paths.get_full_path_or_raise(FOLDER_NAME, predictor_name)),)

    AMEDLoad.__name__ = AMEDLoad.__qualname__ = "SS_AMED_Load"
    return AMEDLoad


def _build() -> Tuple[Dict[str, type], Dict[str, str]]:
    classes: Dict[str, type] = {}
    names: Dict[str, str] = {}
    for cls, title in ((_train_node(), "AMED Train Predictor (SS)"), (_load_node(), "AMED Load Predictor (SS)")):
        classes[cls.__name__], names[cls.__name__] = cls, title
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _build()


def comfyui_setup() -> None:
    """Called once when ComfyUI loads the pack: register ``models/amed``."""
    register_model_folder()
