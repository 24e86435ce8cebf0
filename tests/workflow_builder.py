"""Writes the example workflows (workflows/*.json, ComfyUI UI format 0.4).

    python tests/workflow_builder.py            # rewrite the JSON files

Widget order and defaults come from the same node definitions the tests check against
(ours from the registry, ComfyUI's core ones from comfy_harness.CORE_NODES), so the
files stay in step with the nodes. The JSON is the product: edit it in ComfyUI and save
over it if you like; tests/test_workflows.py checks whatever is there.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import comfy_harness as H  # noqa: E402

NEGATIVE = "blurry, low quality, watermark, text"
SEED = 123456789


class Graph:
    def __init__(self, definitions: Dict[str, Dict[str, Any]]):
        self.defs = definitions
        self.nodes: List[Dict[str, Any]] = []
        self.links: List[list] = []
        self.groups: List[Dict[str, Any]] = []

    def node(self, ntype: str, pos: Tuple[float, float], widgets: Optional[Dict[str, Any]] = None,
             size: Optional[Tuple[float, float]] = None, title: Optional[str] = None,
             color: Optional[str] = None) -> Dict[str, Any]:
        widgets = dict(widgets or {})
        nid = len(self.nodes) + 1
        if ntype in ("Note", "MarkdownNote"):
            node = {"id": nid, "type": ntype, "pos": list(pos), "size": list(size or (400, 200)), "flags": {},
                    "order": nid, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                    "widgets_values": [widgets.pop("text")], "color": "#432", "bgcolor": "#653"}
            if title:
                node["title"] = title
            self.nodes.append(node)
            return node
        d = self.defs[ntype]
        values, inputs, n_widgets = [], [], 0
        for name, typ, opts in d["inputs"]:
            if name in H.widget_names(d):
                n_widgets += 1
                values.append(widgets.pop(name) if name in widgets else opts.get("default", typ[0] if isinstance(typ, list) else None))
                if opts.get("control_after_generate"):
                    values.append("fixed")
            else:
                inputs.append({"name": name, "type": typ, "link": None})
        if widgets:
            raise KeyError(f"{ntype} has no widgets {sorted(widgets)}")
        if any(v is None for v in values):
            raise ValueError(f"{ntype}: a widget has no value: {values}")
        outputs = [{"name": name, "type": typ, "links": [], "slot_index": i}
                   for i, (name, typ) in enumerate(zip(_output_names(ntype, d), d["outputs"]))]
        if size is None:
            rows = max(len(inputs), len(outputs))
            size = (340, 16 + 22 * rows + 24 * n_widgets)
        node = {"id": nid, "type": ntype, "pos": list(pos), "size": list(size), "flags": {}, "order": nid,
                "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": ntype}, "widgets_values": values}
        if title:
            node["title"] = title
        if color:
            node["color"], node["bgcolor"] = color
        self.nodes.append(node)
        return node

    def link(self, src: Dict[str, Any], slot: int, dst: Dict[str, Any], input_name: str) -> None:
        lid = len(self.links) + 1
        typ = src["outputs"][slot]["type"]
        for inp in dst["inputs"]:
            if inp["name"] == input_name:
                inp["link"] = lid
                break
        else:
            raise KeyError(f"{dst['type']} has no input socket {input_name!r}")
        src["outputs"][slot]["links"].append(lid)
        self.links.append([lid, src["id"], slot, dst["id"], dst["inputs"].index(inp), typ])

    def group(self, title: str, bounding: Tuple[float, float, float, float]) -> None:
        self.groups.append({"title": title, "bounding": list(bounding), "color": "#3f789e", "font_size": 24})

    def to_json(self) -> Dict[str, Any]:
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
            "links": self.links, "groups": self.groups, "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [40, 60]}}, "version": 0.4,
        }


def below(node: Dict[str, Any], gap: float = 70) -> Tuple[float, float]:
    """A position under ``node`` (its title bar is 30 px above pos)."""
    return node["pos"][0], node["pos"][1] + node["size"][1] + gap


def _output_names(ntype: str, d: Dict[str, Any]) -> List[str]:
    if ntype == "SamplerCustom":
        return ["output", "denoised_output"]
    return [t if isinstance(t, str) else "COMBO" for t in d["outputs"]]


def _sd_front(g: Graph, ckpt: str, prompt: str, note: str, latent: Tuple[str, Dict[str, Any]] = None,
              x0: float = 0) -> Tuple[Dict, Dict, Dict, Dict]:
    """Checkpoint, prompts, latent and a note: (ckpt node, positive, negative, latent)."""
    g.node("Note", (x0, -230), {"text": note}, size=(760, 190), title="Read me")
    ck = g.node("CheckpointLoaderSimple", (x0, 0), {"ckpt_name": ckpt}, size=(340, 110))
    pos = g.node("CLIPTextEncode", (x0 + 370, 0), {"text": prompt}, size=(400, 160), title="Positive prompt",
                 color=("#232", "#353"))
    neg = g.node("CLIPTextEncode", (x0 + 370, 190), {"text": NEGATIVE}, size=(400, 130), title="Negative prompt",
                 color=("#322", "#533"))
    g.link(ck, 1, pos, "clip")
    g.link(ck, 1, neg, "clip")
    ltype, lw = latent or ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})
    lat = g.node(ltype, (x0, 350), lw, size=(340, 130))
    return ck, pos, neg, lat


def _decode_save(g: Graph, latent_src: Dict, slot: int, vae_src: Dict, x: float, prefix: str) -> None:
    dec = g.node("VAEDecode", (x, 0), size=(220, 50))
    g.link(latent_src, slot, dec, "samples")
    g.link(vae_src, 2, dec, "vae")
    save = g.node("SaveImage", (x, 90), {"filename_prefix": prefix}, size=(420, 470))
    g.link(dec, 0, save, "images")


def sd15_ksampler(defs) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(
        g, "v1-5-pruned-emaonly-fp16.safetensors",
        "a photograph of a red fox in a snowy forest, golden hour, detailed fur",
        "SD1.5 text-to-image with SEEDS-2 picked in the stock KSampler's sampler_name dropdown.\n\n"
        "Checkpoint: v1-5-pruned-emaonly-fp16.safetensors (any SD1.5 checkpoint in models/checkpoints).\n"
        "Every ss_* entry of the dropdown runs the solver with its recommended settings; the scheduler "
        "dropdown also has ss_logsnr_uniform, ss_vp_time_uniform, ss_deis_quadratic and ss_edm_rho. "
        "SEEDS-2 makes 2 model calls per step: 15 steps cost about as much as 30 Euler steps.",
    )
    ks = g.node("KSampler", (800, 0), {"seed": SEED, "steps": 15, "cfg": 6.0, "sampler_name": "ss_seeds_2",
                                       "scheduler": "karras", "denoise": 1.0}, size=(340, 290))
    g.link(ck, 0, ks, "model")
    g.link(pos, 0, ks, "positive")
    g.link(neg, 0, ks, "negative")
    g.link(lat, 0, ks, "latent_image")
    _decode_save(g, ks, 0, ck, 1170, "ss_sd15_seeds2")
    return g.to_json()


def sdxl_er_sde(defs) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(
        g, "sd_xl_base_1.0.safetensors",
        "a lighthouse on a cliff at dusk, dramatic clouds, cinematic lighting, highly detailed",
        "SDXL with SamplerCustom, the ER-SDE-Solver sampler node and the logSNR-uniform schedule node.\n\n"
        "Checkpoint: sd_xl_base_1.0.safetensors (any SDXL checkpoint).\n"
        "ER-SDE Sampler (SS): order 3 with the paper's noise-scale function sde_5; eta 0 turns it into the "
        "ODE solver. logSNR Uniform Schedule (SS) spaces the steps evenly in log-SNR over the model's own "
        "sigma range (the SEEDS / DPM-Solver schedule).",
        latent=("EmptyLatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
    )
    smp = g.node("SS_Sampler_er_sde", (800, 360))
    sig = g.node("SS_Sigmas_logsnr_uniform", below(smp), {"steps": 20})
    g.link(ck, 0, sig, "model")
    sc = g.node("SamplerCustom", (1170, 0), {"noise_seed": SEED, "cfg": 6.0}, size=(340, 300))
    g.link(ck, 0, sc, "model")
    g.link(pos, 0, sc, "positive")
    g.link(neg, 0, sc, "negative")
    g.link(smp, 0, sc, "sampler")
    g.link(sig, 0, sc, "sigmas")
    g.link(lat, 0, sc, "latent_image")
    _decode_save(g, sc, 0, ck, 1540, "ss_sdxl_er_sde")
    return g.to_json()


def flow_seeds(defs) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(
        g, "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors",
        "a watercolor painting of a hummingbird drinking from a flower, soft pastel colors",
        "A rectified-flow model (SD3 / SD3.5; same graph for Flux-style models with their loaders) with "
        "SEEDS through SamplerCustom.\n\n"
        "Checkpoint: sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors (an SD3.5 checkpoint with its text "
        "encoders). ModelSamplingSD3 sets the flow time shift; the SEEDS node detects the flow model (alpha = "
        "1 - sigma) by itself. eta 0.5 sits between the deterministic solver (0) and the paper's SDE (1); "
        "compare both ends on your model.",
        latent=("EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
    )
    ms = g.node("ModelSamplingSD3", (800, 360), {"shift": 3.0}, size=(340, 80))
    g.link(ck, 0, ms, "model")
    smp = g.node("SS_Sampler_seeds", below(ms), {"solver": "seeds_2", "eta": 0.5})
    sched = g.node("BasicScheduler", below(smp), {"scheduler": "simple", "steps": 20, "denoise": 1.0})
    g.link(ms, 0, sched, "model")
    sc = g.node("SamplerCustom", (1170, 0), {"noise_seed": SEED, "cfg": 4.5}, size=(340, 300))
    g.link(ms, 0, sc, "model")
    g.link(pos, 0, sc, "positive")
    g.link(neg, 0, sc, "negative")
    g.link(smp, 0, sc, "sampler")
    g.link(sched, 0, sc, "sigmas")
    g.link(lat, 0, sc, "latent_image")
    _decode_save(g, sc, 0, ck, 1540, "ss_flow_seeds")
    return g.to_json()


def deis_low_steps(defs) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(
        g, "v1-5-pruned-emaonly-fp16.safetensors",
        "a cozy cabin interior with a fireplace, warm light, photorealistic",
        "DEIS at 8 steps: a deterministic multistep solver, 1 model call per step, strong at low step counts.\n\n"
        "Checkpoint: v1-5-pruned-emaonly-fp16.safetensors (any SD1.5 checkpoint; works the same for SDXL).\n"
        "KSamplerSelect picks ss_deis from the sampler dropdown; DEIS Quadratic Time Schedule (SS) gives "
        "DEIS's own quadratic-time step spacing (kappa 2) over the model's timesteps.",
    )
    sel = g.node("KSamplerSelect", (800, 360), {"sampler_name": "ss_deis"}, size=(340, 60))
    sig = g.node("SS_Sigmas_deis_quadratic", below(sel), {"steps": 8})
    g.link(ck, 0, sig, "model")
    sc = g.node("SamplerCustom", (1170, 0), {"noise_seed": SEED, "cfg": 6.0}, size=(340, 300))
    g.link(ck, 0, sc, "model")
    g.link(pos, 0, sc, "positive")
    g.link(neg, 0, sc, "negative")
    g.link(sel, 0, sc, "sampler")
    g.link(sig, 0, sc, "sigmas")
    g.link(lat, 0, sc, "latent_image")
    _decode_save(g, sc, 0, ck, 1540, "ss_deis_8steps")
    return g.to_json()


def comparison_grid(defs, samplers: List[str]) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(
        g, "v1-5-pruned-emaonly-fp16.safetensors",
        "a bowl of ramen on a wooden table, steam, studio food photography",
        "The same prompt, seed and step count through several samplers of this pack, stitched left to right in "
        "this order: " + ", ".join(samplers) + ".\n\n"
        "Checkpoint: v1-5-pruned-emaonly-fp16.safetensors (any SD1.5 checkpoint).\n"
        "Change the seed on every KSampler together (they are all set to the same fixed seed) or swap any "
        "sampler_name for another ss_* or built-in entry.",
    )
    prev = None
    y = 0
    for i, name in enumerate(samplers):
        ks = g.node("KSampler", (800, y), {"seed": SEED, "steps": 12, "cfg": 6.0, "sampler_name": name,
                                           "scheduler": "karras", "denoise": 1.0}, size=(340, 290), title=f"KSampler {name}")
        g.link(ck, 0, ks, "model")
        g.link(pos, 0, ks, "positive")
        g.link(neg, 0, ks, "negative")
        g.link(lat, 0, ks, "latent_image")
        dec = g.node("VAEDecode", (1170, y), size=(220, 50))
        g.link(ks, 0, dec, "samples")
        g.link(ck, 2, dec, "vae")
        if prev is None:
            prev = dec
        else:
            st = g.node("ImageStitch", (1420, y), {"direction": "right", "match_image_size": True,
                                                  "spacing_width": 8, "spacing_color": "white"}, size=(300, 170))
            g.link(prev, 0, st, "image1")
            g.link(dec, 0, st, "image2")
            prev = st
        y += 320
    save = g.node("SaveImage", (1750, 0), {"filename_prefix": "ss_comparison"}, size=(700, 420))
    g.link(prev, 0, save, "images")
    return g.to_json()


WORKFLOWS = {
    "1 SD1.5 txt2img - SEEDS-2 in the KSampler dropdown": sd15_ksampler,
    "2 SDXL - SamplerCustom with ER-SDE and a logSNR schedule": sdxl_er_sde,
    "3 Flow model (SD3) - SEEDS with ModelSamplingSD3": flow_seeds,
    "4 DEIS at 8 steps": deis_low_steps,
    "5 Comparison grid - several samplers, same seed": lambda defs: comparison_grid(
        defs, ["ss_seeds_2", "ss_seeds_3", "ss_er_sde", "ss_deis", "ss_ipndm"]),
}


def main() -> None:
    defs = H.offline_definitions()
    # Workflows may name samplers that another change is still adding to the registry;
    # let the builder write them (the tests say which are missing).
    for node in ("KSampler", "KSamplerSelect"):
        for i, (name, typ, opts) in enumerate(defs[node]["inputs"]):
            if name == "sampler_name":
                for extra in ("ss_deis", "ss_ipndm"):
                    if extra not in typ:
                        typ.append(extra)
    os.makedirs(H.WORKFLOW_DIR, exist_ok=True)
    for name, build in WORKFLOWS.items():
        path = os.path.join(H.WORKFLOW_DIR, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(build(defs), f, indent=1)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
