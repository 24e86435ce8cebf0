"""Test helpers for the ComfyUI integration (imported by tests/test_workflows.py and
tests/test_comfyui_*.py; nothing here is part of the pack).

* UI-format workflow -> API prompt conversion, driven by node input definitions:
  ours from :func:`seeds_samplers.nodes.node_definitions`, ComfyUI's core ones from
  :data:`CORE_NODES` (kept here for CI, where ComfyUI is absent) or from a running
  server's ``/object_info``.
* A random-weight SD1.5 checkpoint built with ComfyUI's own model classes
  (``python tests/comfy_harness.py make-checkpoint OUT`` inside the ComfyUI venv; the
  integration tests call it in a subprocess and cache the file outside the repository).
* A headless ComfyUI server on 127.0.0.1 (``main.py --cpu``), started and stopped by the
  integration tests, with an ``extra_model_paths`` yaml naming the checkpoint and the
  custom_nodes directories in load order.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterable, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW_DIR = os.path.join(REPO, "workflows")

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
# Frontend-only nodes: shown in the graph, dropped from the API prompt.
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "CHECKPOINT_FILE", "SAMPLERS", "SCHEDULERS"}


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
    from seeds_samplers.nodes.definitions import scheduler_name
    from seeds_samplers.samplers.registry import SAMPLERS
    from seeds_samplers.samplers.schedules import SCHEDULES

    samplers = CORE_SAMPLERS + [s.host_name for s in SAMPLERS.values()]
    schedulers = CORE_SCHEDULERS + [scheduler_name(s) for s in SCHEDULES]
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
    out = {}
    for node_id, info in object_info.items():
        out[node_id] = definition_from_input_types(info.get("input", {}), list(info.get("output", [])))
    return out


def _is_widget(typ: Any, opts: Dict[str, Any]) -> bool:
    return isinstance(typ, list) or typ in WIDGET_TYPES or opts.get("forceInput") is False


# ---------------------------------------------------------------------------------------
# UI workflow -> API prompt
# ---------------------------------------------------------------------------------------
class WorkflowError(AssertionError):
    pass


def widget_names(definition: Dict[str, Any]) -> List[str]:
    """Names of widgets_values slots in order, with the frontend's extra
    ``control_after_generate`` slot after seed-like INT widgets."""
    names = []
    for name, typ, opts in definition["inputs"]:
        if typ in ("INT", "FLOAT", "STRING", "BOOLEAN") or isinstance(typ, list) or typ == "CHECKPOINT_FILE":
            names.append(name)
            if has_control_widget(name, typ, opts):
                names.append(f"{name}:control_after_generate")
    return names


def has_control_widget(name: str, typ: Any, opts: Dict[str, Any]) -> bool:
    """The frontend (1.27) adds a control_after_generate widget, and a widgets_values
    slot, to an INT that asks for one and to every INT named seed or noise_seed."""
    return typ == "INT" and bool(opts.get("control_after_generate") or name in ("seed", "noise_seed"))


def check_value(node_type: str, name: str, typ: Any, opts: Dict[str, Any], value: Any) -> None:
    where = f"{node_type}.{name}"
    if isinstance(typ, list):
        if value not in typ:
            raise WorkflowError(f"{where}: {value!r} is not one of the options")
    elif typ == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            raise WorkflowError(f"{where}: {value!r} is not an int")
        _check_range(where, value, opts)
    elif typ == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise WorkflowError(f"{where}: {value!r} is not a finite number")
        _check_range(where, value, opts)
    elif typ == "BOOLEAN":
        if not isinstance(value, bool):
            raise WorkflowError(f"{where}: {value!r} is not a boolean")
    elif typ in ("STRING", "CHECKPOINT_FILE"):
        if not isinstance(value, str):
            raise WorkflowError(f"{where}: {value!r} is not a string")


def _check_range(where: str, value: float, opts: Dict[str, Any]) -> None:
    lo, hi = opts.get("min"), opts.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise WorkflowError(f"{where}: {value!r} is outside [{lo}, {hi}]")


def ui_to_api(workflow: Dict[str, Any], definitions: Dict[str, Dict[str, Any]],
              overrides: Optional[Dict[Tuple[str, str], Any]] = None) -> Dict[str, Any]:
    """Convert a UI-format workflow (``nodes`` + ``links``) to an API prompt.

    Checks every node type and input against ``definitions``, every widget value
    against its type and range, and every link against the declared output type.
    ``overrides`` maps ``(node type, input name)`` to a replacement value (e.g. the test
    checkpoint's file name, smaller sizes and fewer steps).
    """
    overrides = overrides or {}
    links = {}
    for link in workflow.get("links", []):
        link_id, src, src_slot, dst, dst_slot, typ = link[:6]
        links[link_id] = (src, src_slot, dst, dst_slot, typ)
    nodes_by_id = {n["id"]: n for n in workflow["nodes"]}
    prompt: Dict[str, Any] = {}
    for node in workflow["nodes"]:
        ntype = node["type"]
        if ntype in VIRTUAL_NODES:
            continue
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        if ntype not in definitions:
            raise WorkflowError(f"node {node['id']}: unknown node type {ntype!r}")
        d = definitions[ntype]
        names = widget_names(d)
        values = list(node.get("widgets_values") or [])
        if len(values) != len(names):
            raise WorkflowError(f"node {node['id']} ({ntype}): {len(values)} widget values for widgets {names}")
        widget_values = dict(zip(names, values))
        linked = {}
        for inp in node.get("inputs", []) or []:
            if inp.get("link") is None:
                continue
            src, src_slot, dst, dst_slot, ltyp = links[inp["link"]]
            if dst != node["id"]:
                raise WorkflowError(f"link {inp['link']} does not end at node {node['id']}")
            src_node = nodes_by_id[src]
            src_def = definitions.get(src_node["type"])
            if src_def is None:
                raise WorkflowError(f"link from unknown node type {src_node['type']!r}")
            out_type = src_def["outputs"][src_slot]
            linked[inp["name"]] = ([str(src), src_slot], out_type)
        api_inputs: Dict[str, Any] = {}
        for name, typ, opts in d["inputs"]:
            if name in linked:
                ref, out_type = linked[name]
                want = "COMBO" if isinstance(typ, list) else typ
                got = "COMBO" if isinstance(out_type, list) else out_type
                if want != got and got != "*" and want != "*":
                    raise WorkflowError(f"node {node['id']} ({ntype}).{name}: linked {got} into {want}")
                api_inputs[name] = ref
            elif name in widget_values:
                value = overrides.get((ntype, name), widget_values[name])
                check_value(ntype, name, typ, opts, value)
                api_inputs[name] = value
            elif not opts.get("optional"):
                raise WorkflowError(f"node {node['id']} ({ntype}): required input {name!r} is not connected")
        for inp in node.get("inputs", []) or []:
            if inp.get("link") is not None and inp["name"] not in {n for n, _, _ in d["inputs"]}:
                raise WorkflowError(f"node {node['id']} ({ntype}): no input named {inp['name']!r}")
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": api_inputs}
    return prompt


def load_workflows() -> Dict[str, Dict[str, Any]]:
    out = {}
    for fn in sorted(os.listdir(WORKFLOW_DIR)):
        if fn.endswith(".json"):
            with open(os.path.join(WORKFLOW_DIR, fn), encoding="utf-8") as f:
                out[fn[:-5]] = json.load(f)
    return out


# ---------------------------------------------------------------------------------------
# Random SD1.5 checkpoint (ComfyUI's own model classes; run inside ComfyUI's venv)
# ---------------------------------------------------------------------------------------
# A one-level UNet with SD1.5's channel count, context size and conv-projection
# transformers: detected by ComfyUI as SD15 (COMFYUI.md §5.3), ~26 M parameters.
SMALL_SD15_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1],
    channel_mult=[1], transformer_depth=[1], transformer_depth_output=[1, 1], transformer_depth_middle=1,
    context_dim=768, num_heads=8, num_head_channels=-1, use_linear_in_transformer=False,
    use_spatial_transformer=True, legacy=False, adm_in_channels=None, use_temporal_resblock=False,
    use_temporal_attention=False, use_checkpoint=False,
)


def make_checkpoint(path: str, seed: int = 1234) -> None:
    """Write a random-weight SD1.5 checkpoint (fp16 safetensors) to ``path``."""
    root = os.environ["COMFYUI_ROOT"]
    sys.path.insert(0, root)
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
    with open(os.path.join(root, "comfy", "sd1_clip_config.json")) as f:
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


def ensure_checkpoint(cache_dir: str, python: str = sys.executable, timeout: float = 600) -> str:
    """The cached random checkpoint, built in a subprocess on first use."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, "ss_random_sd15.safetensors")
    if not os.path.exists(path):
        subprocess.run([python, os.path.abspath(__file__), "make-checkpoint", path], check=True,
                       cwd=os.environ["COMFYUI_ROOT"], timeout=timeout)
    return path


# ---------------------------------------------------------------------------------------
# Headless server
# ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """``main.py --cpu`` on 127.0.0.1 with the given custom_nodes directories (in load
    order) and checkpoint directory; log in ``<workdir>/server.log``."""

    def __init__(self, workdir: str, checkpoints_dir: str, custom_node_dirs: Iterable[str],
                 python: str = sys.executable, extra_args: Iterable[str] = ()):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "server.log")
        self.output_dir = os.path.join(workdir, "output")
        for sub in ("output", "input", "user", "temp"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        yaml_path = os.path.join(workdir, "extra_model_paths.yaml")
        with open(yaml_path, "w") as f:
            for i, d in enumerate(custom_node_dirs):
                f.write(f"nodes_{i}:\n    custom_nodes: {d}\n")
            f.write(f"models:\n    checkpoints: {checkpoints_dir}\n")
        root = os.environ["COMFYUI_ROOT"]
        self.cmd = [
            python, os.path.join(root, "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--extra-model-paths-config", yaml_path, "--output-directory", self.output_dir,
            "--input-directory", os.path.join(workdir, "input"), "--user-directory", os.path.join(workdir, "user"),
            "--temp-directory", os.path.join(workdir, "temp"), "--database-url", "sqlite:///:memory:",
            "--disable-auto-launch", "--preview-method", "none", *extra_args,
        ]
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 300) -> "ComfyServer":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=os.environ["COMFYUI_ROOT"], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not start within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    # --- HTTP -------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 30) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def post(self, path: str, body: Any, timeout: float = 30) -> Tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read().decode()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def queue(self, prompt: Dict[str, Any], client_id: str = "ss-tests") -> Tuple[int, Any]:
        return self.post("/prompt", {"prompt": prompt, "client_id": client_id})

    def wait(self, prompt_id: str, timeout: float = 300) -> Dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                entry = hist[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")

    def run(self, prompt: Dict[str, Any], timeout: float = 300) -> Dict[str, Any]:
        status, body = self.queue(prompt)
        if status != 200:
            raise AssertionError(f"prompt rejected ({status}): {json.dumps(body)[:3000]}")
        return self.wait(body["prompt_id"], timeout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-checkpoint":
        make_checkpoint(sys.argv[2])
    else:
        sys.exit("usage: comfy_harness.py make-checkpoint OUT.safetensors")


# ---------------------------------------------------------------------------------------
# Test-only custom nodes, written into the server's custom_nodes directories
# ---------------------------------------------------------------------------------------
# A pack that copies the sampler and scheduler lists into its own combo output at its
# import, as several "sampler selector" packs do (COMFYUI.md §1.7); loaded before ours.
SNAPSHOT_PACK = '''
import comfy.samplers

class SSTestSamplerSnapshot:
    SAMPLERS = comfy.samplers.SAMPLER_NAMES.copy()
    SCHEDULERS = comfy.samplers.SCHEDULER_NAMES.copy()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (cls.SAMPLERS,), "scheduler": (cls.SCHEDULERS,)}}

    RETURN_TYPES = (SAMPLERS, SCHEDULERS)
    RETURN_NAMES = ("sampler_name", "scheduler")
    FUNCTION = "pick"
    CATEGORY = "tests"

    def pick(self, sampler_name, scheduler):
        return (sampler_name, scheduler)

NODE_CLASS_MAPPINGS = {"SSTestSamplerSnapshot": SSTestSamplerSnapshot}
'''

# Probes, loaded after our pack. PACK_MODULE is the sys.modules key ComfyUI gives our pack.
PROBE_PACK = '''
import json, math, sys, time
import torch
import comfy.samplers
import comfy.model_management

PACK_MODULE = %(pack_module)r


def _append(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\\n")


class SSTestProbeSampler:
    """Runs a dropdown entry (by name, as KSampler would) and records what it sees."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (comfy.samplers.SAMPLER_NAMES,), "report": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get"
    CATEGORY = "tests"

    def get(self, sampler_name, report):
        inner = comfy.samplers.sampler_object(sampler_name)
        fn = inner.sampler_function

        def probe(model, x, sigmas, extra_args=None, callback=None, disable=None, **kw):
            pack = sys.modules[PACK_MODULE]
            mt = pack.nodes.model_type.comfy_model_type(model)
            ms = model.inner_model.model_patcher.get_model_object("model_sampling")
            mask = extra_args.get("denoise_mask")
            rec = {"sampler": sampler_name, "calls": 0, "same_mask": [], "seeds": [], "keys": [],
                   "callbacks": [], "seed": extra_args.get("seed"), "has_mask": mask is not None,
                   "kind": mt.kind, "sigma_min": mt.sigma_min, "sigma_max": mt.sigma_max,
                   "flow_first_sigma": mt.flow_first_sigma, "noise_scale": mt.noise_scale,
                   "ms_classes": [c.__name__ for c in type(ms).__mro__],
                   "ms_sigma_min": float(ms.sigma_min), "ms_sigma_max": float(ms.sigma_max),
                   "ms_percent_1e4": float(ms.percent_to_sigma(1e-4)),
                   "ms_noise_scale": float(getattr(ms, "noise_scale", 1.0)),
                   "sigmas": [float(s) for s in sigmas]}

            class Wrapped:
                inner_model = model.inner_model

                def __call__(self, xx, sigma, **ea):
                    rec["calls"] += 1
                    rec["same_mask"].append(ea.get("denoise_mask") is mask)
                    rec["seeds"].append(ea.get("seed"))
                    rec["keys"] = sorted(ea)
                    return model(xx, sigma, **ea)

            def cb(d):
                rec["callbacks"].append({"i": d["i"], "keys": sorted(d)})
                if callback is not None:
                    callback(d)

            out = fn(Wrapped(), x, sigmas, extra_args=extra_args, callback=cb, disable=disable, **kw)
            rec["finite"] = bool(torch.isfinite(out).all())
            if rec["seed"] is not None:  # the noise comes from extra_args["seed"], nowhere else
                torch.manual_seed(12345)  # a different global RNG state must not matter
                again = fn(model, x, sigmas, extra_args=dict(extra_args), disable=True, **kw)
                other = fn(model, x, sigmas, extra_args=dict(extra_args, seed=rec["seed"] + 1), disable=True, **kw)
                rec["same_seed_same_result"] = bool(torch.equal(again, out))
                rec["other_seed_differs"] = not bool(torch.equal(other, out))
            _append(report, rec)
            return out

        return (comfy.samplers.KSAMPLER(probe, {}, inner.inpaint_options),)


class SSTestModelCalls:
    """Records every UNet call; optionally sleeps per call and/or interrupts at call N."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "report": ("STRING", {"default": ""}),
                             "interrupt_at": ("INT", {"default": 0, "min": 0, "max": 100000}),
                             "sleep": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "tests"

    def patch(self, model, report, interrupt_at, sleep):
        m = model.clone()
        state = {"n": 0}

        def wrapper(apply_model, args):
            state["n"] += 1
            n = state["n"]
            _append(report, {"call": n, "t": time.time()})
            if interrupt_at and n == interrupt_at:
                comfy.model_management.interrupt_current_processing(True)
            if sleep:
                time.sleep(sleep)
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(wrapper)
        return (m,)


class SSTestImageCheck:
    """Output node: fails on a non-finite image and reports its statistics."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "label": ("STRING", {"default": ""})}}

    RETURN_TYPES = ()
    FUNCTION = "check"
    OUTPUT_NODE = True
    CATEGORY = "tests"

    def check(self, images, label):
        finite = bool(torch.isfinite(images).all())
        if not finite:
            raise ValueError(f"{label}: image has NaN or inf")
        stats = {"label": label, "finite": finite, "shape": list(images.shape), "mean": float(images.mean()),
                 "std": float(images.std()), "sum": float(images.double().sum())}
        return {"ui": {"ss_check": [stats]}}


NODE_CLASS_MAPPINGS = {"SSTestProbeSampler": SSTestProbeSampler, "SSTestModelCalls": SSTestModelCalls,
                       "SSTestImageCheck": SSTestImageCheck}
'''


def missing_samplers(workflow: Dict[str, Any]) -> List[str]:
    """``ss_*`` names and ``SS_*`` node types a workflow uses that the registry lacks
    (samplers another change is still adding)."""
    from seeds_samplers.nodes import node_definitions
    from seeds_samplers.nodes.definitions import scheduler_name
    from seeds_samplers.samplers.registry import SAMPLERS
    from seeds_samplers.samplers.schedules import SCHEDULES

    known = {s.host_name for s in SAMPLERS.values()} | {scheduler_name(s) for s in SCHEDULES}
    node_types = set(node_definitions()[0])
    missing = []
    for node in workflow["nodes"]:
        if node["type"].startswith("SS_") and node["type"] not in node_types:
            missing.append(node["type"])
        if node["type"] not in ("KSampler", "KSamplerAdvanced", "KSamplerSelect", "BasicScheduler"):
            continue
        for v in node.get("widgets_values") or []:
            if isinstance(v, str) and v.startswith("ss_") and v not in known and " " not in v:
                missing.append(v)
    return sorted(set(missing))
