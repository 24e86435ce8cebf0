"""ComfyUI node input definitions for the workflow tests: ComfyUI's core nodes as
v0.3.64 declares them (:data:`CORE_NODES`, kept here for CI, where ComfyUI is absent),
ours from :func:`seeds_samplers.nodes.node_definitions`, or a running server's
``/object_info``. A definition is ``{"inputs": [(name, type, options), ...], "outputs": [...]}``.
"""

from __future__ import annotations

from typing import Any, Dict, List

# ---------------------------------------------------------------------------------------
# Core node input definitions (ComfyUI 0.3.64, comfy nodes.py / comfy_extras), in
# INPUT_TYPES order, for the node types the example workflows use. Each entry is
# (name, type, options); a list type is a combo. ``SAMPLERS`` / ``SCHEDULERS`` stand for
# ComfyUI's live lists (built-ins + ours), checked separately.
# ---------------------------------------------------------------------------------------
SEED = {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}
CORE_SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
]
CORE_SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                   "linear_quadratic", "kl_optimal"]

CORE_NODES: Dict[str, Dict[str, Any]] = {
    "CheckpointLoaderSimple": {"inputs": [("ckpt_name", "CHECKPOINT_FILE", {})],
                               "outputs": ["MODEL", "CLIP", "VAE"]},
    "CLIPTextEncode": {"inputs": [("text", "STRING", {"multiline": True}), ("clip", "CLIP", {})],
                       "outputs": ["CONDITIONING"]},
    "EmptyLatentImage": {"inputs": [("width", "INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                                    ("height", "INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                                    ("batch_size", "INT", {"default": 1, "min": 1, "max": 4096})],
                         "outputs": ["LATENT"]},
    "KSampler": {"inputs": [("model", "MODEL", {}), ("seed", "INT", SEED),
                            ("steps", "INT", {"default": 20, "min": 1, "max": 10000}),
                            ("cfg", "FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                            ("sampler_name", "SAMPLERS", {}), ("scheduler", "SCHEDULERS", {}),
                            ("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                            ("latent_image", "LATENT", {}),
                            ("denoise", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})],
                 "outputs": ["LATENT"]},
    "VAEDecode": {"inputs": [("samples", "LATENT", {}), ("vae", "VAE", {})], "outputs": ["IMAGE"]},
    "SaveImage": {"inputs": [("images", "IMAGE", {}), ("filename_prefix", "STRING", {"default": "ComfyUI"})],
                  "outputs": []},
    "SamplerCustom": {"inputs": [("model", "MODEL", {}), ("add_noise", "BOOLEAN", {"default": True}),
                                 ("noise_seed", "INT", SEED),
                                 ("cfg", "FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                                 ("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                                 ("sampler", "SAMPLER", {}), ("sigmas", "SIGMAS", {}),
                                 ("latent_image", "LATENT", {})],
                      "outputs": ["LATENT", "LATENT"]},
    "KSamplerSelect": {"inputs": [("sampler_name", "SAMPLERS", {})], "outputs": ["SAMPLER"]},
    "BasicScheduler": {"inputs": [("model", "MODEL", {}), ("scheduler", "SCHEDULERS", {}),
                                  ("steps", "INT", {"default": 20, "min": 1, "max": 10000}),
                                  ("denoise", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})],
                       "outputs": ["SIGMAS"]},
    "ModelSamplingSD3": {"inputs": [("model", "MODEL", {}),
                                    ("shift", "FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0})],
                         "outputs": ["MODEL"]},
    "EmptySD3LatentImage": {"inputs": [("width", "INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}),
                                       ("height", "INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}),
                                       ("batch_size", "INT", {"default": 1, "min": 1, "max": 4096})],
                            "outputs": ["LATENT"]},
    "SetLatentNoiseMask": {"inputs": [("samples", "LATENT", {}), ("mask", "MASK", {})], "outputs": ["LATENT"]},
    "SolidMask": {"inputs": [("value", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
                             ("width", "INT", {"default": 512, "min": 1, "max": 16384}),
                             ("height", "INT", {"default": 512, "min": 1, "max": 16384})],
                  "outputs": ["MASK"]},
    "ImageBatch": {"inputs": [("image1", "IMAGE", {}), ("image2", "IMAGE", {})], "outputs": ["IMAGE"]},
    "LatentBatch": {"inputs": [("samples1", "LATENT", {}), ("samples2", "LATENT", {})], "outputs": ["LATENT"]},
    "ImageStitch": {"inputs": [("image1", "IMAGE", {}), ("direction", ["right", "down", "left", "up"], {}),
                               ("match_image_size", "BOOLEAN", {"default": True}),
                               ("spacing_width", "INT", {"default": 0, "min": 0, "max": 1024, "step": 2}),
                               ("spacing_color", ["white", "black", "red", "green", "blue"], {}),
                               ("image2", "IMAGE", {"optional": True})],
                    "outputs": ["IMAGE"]},
}


def _ours() -> Dict[str, Dict[str, Any]]:
    from seeds_samplers.nodes import node_definitions

    classes, _ = node_definitions()
    return {node_id: definition_from_input_types(cls.INPUT_TYPES(), list(cls.RETURN_TYPES))
            for node_id, cls in classes.items()}


def definition_from_input_types(input_types: Dict[str, Any], outputs: List[Any]) -> Dict[str, Any]:
    """A node's ``(name, type, options)`` list from classic INPUT_TYPES / object_info."""
    rows = []
    for section in ("required", "optional"):
        for name, spec in (input_types.get(section) or {}).items():
            typ = spec[0]
            opts = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if section == "optional":
                opts["optional"] = True
            if typ == "COMBO":  # newer object_info style
                typ = list(opts.get("options", []))
            rows.append((name, typ, opts))
    return {"inputs": rows, "outputs": outputs}


def offline_definitions() -> Dict[str, Dict[str, Any]]:
    """Core (from CORE_NODES) and ours (from the registry), with the live lists resolved
    to ComfyUI's built-ins plus our registered names."""
    from seeds_samplers.samplers.cfg_pp import menu_entries
    from seeds_samplers.samplers.schedules import SCHEDULES

    samplers = CORE_SAMPLERS + [s.host_name for s in menu_entries()]
    schedulers = CORE_SCHEDULERS + [s.host_name for s in SCHEDULES.values()]
    out = {}
    for node_id, d in CORE_NODES.items():
        rows = []
        for name, typ, opts in d["inputs"]:
            if typ == "SAMPLERS":
                typ = list(samplers)
            elif typ == "SCHEDULERS":
                typ = list(schedulers)
            rows.append((name, typ, opts))
        out[node_id] = {"inputs": rows, "outputs": d["outputs"]}
    out.update(_ours())
    return out


def server_definitions(object_info: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Every node a running server lists in its ``/object_info``."""
    out = {}
    for node_id, info in object_info.items():
        out[node_id] = definition_from_input_types(info.get("input", {}), list(info.get("output", [])))
    return out
