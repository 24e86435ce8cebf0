"""Writes the example workflows (workflows/*.json, ComfyUI UI format 0.4).

    python -m tests.support.workflow_builder    # from the repository root: rewrite the JSON
                                                # files, thumbnails and docs/comfyui.md's tables

Widget order and defaults come from the same node definitions the tests check against
(ours from the registry, ComfyUI's core ones from support.comfy_nodes.CORE_NODES), so the
files stay in step with the nodes. Each workflow's note is written from the widget values
of the graph it describes (:data:`WORKFLOWS` pairs a graph builder with a note writer that
reads them through :class:`Widgets`), so tests/test_workflows.py can write the note again
from a file's own values and compare. The JSON is the product: edit it in ComfyUI and save
over it if you like (then rewrite its note here); tests/test_workflows.py checks whatever
is there.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

from . import REPO
from .comfy_nodes import offline_definitions
from .comfy_workflows import WORKFLOW_DIR, has_control_widget, load_workflows, widget_names

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
            if name in widget_names(d):
                n_widgets += 1
                values.append(widgets.pop(name) if name in widgets else opts.get("default", typ[0] if isinstance(typ, list) else None))
                if has_control_widget(name, typ, opts):
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
            "extra": {"ds": fit_view(self.nodes)}, "version": 0.4,
        }


# The graph canvas of a 1600 x 1000 browser window (ComfyUI's top menu and side bar off it).
VIEW = (1550, 900)


def bounds(nodes: List[Dict[str, Any]]) -> Tuple[float, float, float, float]:
    """Canvas bounding box of the nodes, title bars (30 units above pos) included."""
    return (min(n["pos"][0] for n in nodes), min(n["pos"][1] - 30 for n in nodes),
            max(n["pos"][0] + n["size"][0] for n in nodes), max(n["pos"][1] + n["size"][1] for n in nodes))


def fit_view(nodes: List[Dict[str, Any]], view: Tuple[float, float] = VIEW, pad: float = 20) -> Dict[str, Any]:
    """The view a workflow opens at: the whole graph centred in ``view``, zoom at most 1."""
    x0, y0, x1, y1 = bounds(nodes)
    scale = min((view[0] - 2 * pad) / (x1 - x0), (view[1] - 2 * pad) / (y1 - y0), 1.0)
    offset = [(view[0] / scale - (x1 - x0)) / 2 - x0, (view[1] / scale - (y1 - y0)) / 2 - y0]
    return {"scale": round(scale, 4), "offset": [round(offset[0], 1), round(offset[1], 1)]}


def below(node: Dict[str, Any], gap: float = 70) -> Tuple[float, float]:
    """A position under ``node`` (its title bar is 30 px above pos)."""
    return node["pos"][0], node["pos"][1] + node["size"][1] + gap


def _output_names(ntype: str, d: Dict[str, Any]) -> List[str]:
    if ntype == "SamplerCustom":
        return ["output", "denoised_output"]
    return [t if isinstance(t, str) else "COMBO" for t in d["outputs"]]


# --- the checkpoints the workflows expect ------------------------------------------------
# file name -> (what it is, where to get it). Each workflow's note starts with its line;
# docs/comfyui.md lists them (tests/test_workflows.py checks both).
CHECKPOINTS = {
    "v1-5-pruned-emaonly-fp16.safetensors": (
        "Stable Diffusion 1.5", "Comfy-Org/stable-diffusion-v1-5-archive on Hugging Face", "any SD1.5 checkpoint"),
    "sd_xl_base_1.0.safetensors": (
        "Stable Diffusion XL base 1.0", "stabilityai/stable-diffusion-xl-base-1.0 on Hugging Face",
        "any SDXL checkpoint"),
    "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors": (
        "Stable Diffusion 3.5 Medium with its text encoders", "Comfy-Org/stable-diffusion-3.5-fp8 on Hugging Face",
        "any SD3/SD3.5 checkpoint that includes its text encoders"),
}
CHECKPOINT_DIR = "ComfyUI/models/checkpoints/"


def checkpoint_line(ckpt: str) -> str:
    """The first line of a note: the file, where it goes, what may replace it."""
    what, source, alternative = CHECKPOINTS[ckpt]
    return (f"NEEDS {ckpt} in {CHECKPOINT_DIR} ({what}, from {source}; {alternative} works: "
            f"pick it in Load Checkpoint).")


def titles() -> Dict[str, str]:
    """Display names of the pack's nodes: the same source as ComfyUI's node titles."""
    from seeds_samplers.nodes import node_definitions

    return node_definitions()[1]


def title(node_id: str) -> str:
    return titles()[node_id]


def _spec(host_name: str):
    from seeds_samplers.samplers.registry import SAMPLERS

    return next(s for s in SAMPLERS.values() if s.host_name == host_name)


def _schedulers() -> str:
    from seeds_samplers.samplers.schedules import SCHEDULES

    return ", ".join(s.host_name for s in SCHEDULES.values())


def _calls(host_name: str) -> int:
    spec = _spec(host_name)
    return spec.calls(**dict(spec.menu))


def _sd_front(g: Graph, ckpt: str, prompt: str, latent: Tuple[str, Dict[str, Any]] = None,
              x0: float = 0) -> Tuple[Dict, Dict, Dict, Dict]:
    """Checkpoint, prompts, latent and an empty note (its writer fills it in):
    (ckpt node, positive, negative, latent)."""
    g.node("Note", (x0, -260), {"text": ""}, size=(770, 220), title="Read me")
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


def _sampler_custom(g: Graph, pos: Tuple[float, float], cfg: float, model: Dict, positive: Dict, negative: Dict,
                    sampler: Dict, sigmas: Dict, latent: Dict, ckpt: Dict, prefix: str) -> None:
    """SamplerCustom fed by output 0 of each given node, then decode (``ckpt``'s VAE) and save."""
    sc = g.node("SamplerCustom", pos, {"noise_seed": SEED, "cfg": cfg}, size=(340, 300))
    for src, name in ((model, "model"), (positive, "positive"), (negative, "negative"), (sampler, "sampler"),
                      (sigmas, "sigmas"), (latent, "latent_image")):
        g.link(src, 0, sc, name)
    _decode_save(g, sc, 0, ckpt, 1540, prefix)


def sd15_ksampler(defs) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(g, "v1-5-pruned-emaonly-fp16.safetensors",
                                  "a photograph of a red fox in a snowy forest, golden hour, detailed fur")
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
        latent=("EmptyLatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
    )
    smp = g.node("SS_Sampler_er_sde", (800, 0))
    sig = g.node("SS_Sigmas_logsnr_uniform", below(smp), {"steps": 20})
    g.link(ck, 0, sig, "model")
    _sampler_custom(g, (1170, 0), 6.0, ck, pos, neg, smp, sig, lat, ck, "ss_sdxl_er_sde")
    return g.to_json()


def flow_seeds(defs) -> Dict[str, Any]:
    g = Graph(defs)
    node_id = "SS_Sampler_" + _spec("ss_seeds_2").id
    ck, pos, neg, lat = _sd_front(
        g, "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors",
        "a watercolor painting of a hummingbird drinking from a flower, soft pastel colors",
        latent=("EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
    )
    ms = g.node("ModelSamplingSD3", (800, 0), {"shift": 3.0}, size=(340, 80))
    g.link(ck, 0, ms, "model")
    smp = g.node(node_id, below(ms), {"eta": 0.5})
    sched = g.node("BasicScheduler", below(smp), {"scheduler": "simple", "steps": 20, "denoise": 1.0})
    g.link(ms, 0, sched, "model")
    _sampler_custom(g, (1170, 0), 4.5, ms, pos, neg, smp, sched, lat, ck, "ss_flow_seeds")
    return g.to_json()


def deis_low_steps(defs) -> Dict[str, Any]:
    g = Graph(defs)
    ck, pos, neg, lat = _sd_front(g, "v1-5-pruned-emaonly-fp16.safetensors",
                                  "a cozy cabin interior with a fireplace, warm light, photorealistic")
    sel = g.node("KSamplerSelect", (800, 0), {"sampler_name": "ss_deis"}, size=(340, 60))
    sig = g.node("SS_Sigmas_deis_quadratic", below(sel), {"steps": 8})
    g.link(ck, 0, sig, "model")
    _sampler_custom(g, (1170, 0), 6.0, ck, pos, neg, sel, sig, lat, ck, "ss_deis_8steps")
    return g.to_json()


def _sampler_row(g: Graph, samplers: List[str], y: float, col: float, gap: float, widgets: Dict[str, Any],
                 model: Dict, positive: Dict, negative: Dict, latent: Dict) -> Tuple[Dict, float]:
    """One KSampler per sampler in a row at height ``y`` (same seed, karras, the given
    ``widgets``), fed by output 0 of the given nodes, their latents batched left to right
    below the row: (the last batch node, the row's width)."""
    batch = None
    for i, name in enumerate(samplers):
        ks = g.node("KSampler", (i * (col + gap), y), dict({"seed": SEED, "sampler_name": name, "scheduler": "karras",
                                                            "denoise": 1.0}, **widgets),
                    size=(col, 262), title=f"KSampler {name}")
        for src, input_name in ((model, "model"), (positive, "positive"), (negative, "negative"),
                                (latent, "latent_image")):
            g.link(src, 0, ks, input_name)
        if batch is None:
            batch = ks
            continue
        nxt = g.node("LatentBatch", (i * (col + gap) - 110, y + 300), size=(200, 60))
        g.link(batch, 0, nxt, "samples1")
        g.link(ks, 0, nxt, "samples2")
        batch = nxt
    return batch, len(samplers) * (col + gap) - gap


def comparison_grid(defs, samplers: List[str]) -> Dict[str, Any]:
    """Prompts and note on top, one row of KSamplers, their latents batched into one decode
    and one wide Save Image below (the results side by side): about 1800 x 1120 canvas
    units, so the whole graph fits a 1600 x 1000 window at about 80 % zoom."""
    g = Graph(defs)
    ckpt = "v1-5-pruned-emaonly-fp16.safetensors"
    col, gap = 340, 20
    ck = g.node("CheckpointLoaderSimple", (0, 0), {"ckpt_name": ckpt}, size=(col, 110))
    lat = g.node("EmptyLatentImage", (0, 150), {"width": 512, "height": 512, "batch_size": 1}, size=(col, 130))
    pos = g.node("CLIPTextEncode", (col + gap, 0), {"text": "a bowl of ramen on a wooden table, steam, studio food "
                                                            "photography"},
                 size=(2 * col + gap, 130), title="Positive prompt", color=("#232", "#353"))
    neg = g.node("CLIPTextEncode", (col + gap, 170), {"text": NEGATIVE}, size=(2 * col + gap, 110),
                 title="Negative prompt", color=("#322", "#533"))
    g.link(ck, 1, pos, "clip")
    g.link(ck, 1, neg, "clip")
    g.node("Note", (3 * (col + gap), 0), {"text": ""}, size=(2 * col + gap, 280), title="Read me")
    y = 340
    batch, width = _sampler_row(g, samplers, y, col, gap, {"steps": 12, "cfg": 6.0}, ck, pos, neg, lat)
    dec = g.node("VAEDecode", (width - 220, y + 300), size=(220, 50))
    g.link(batch, 0, dec, "samples")
    g.link(ck, 2, dec, "vae")
    save = g.node("SaveImage", (0, y + 420), {"filename_prefix": "ss_comparison"}, size=(width, 330))
    g.link(dec, 0, save, "images")
    return g.to_json()


# --- template thumbnails: large-type title cards ------------------------------------------
# The Browse Templates dialog (frontend 1.27) shows <name>.jpg in a 256 x 256 box with the
# file name as the card's title and, for a custom node pack, the same name again as its
# description; the square card image carries what the workflow shows, in type that reads
# at that size.
CARD_SIZE = (600, 600)
CARD_TEXT = {
    "1": ("the stock KSampler,", "sampler_name ss_seeds_2"),
    "2": ("ER-SDE-Solver node", "logSNR-uniform node"),
    "3": ("ModelSamplingSD3", "SEEDS-2 node, eta 0.5"),
    "4": ("KSamplerSelect ss_deis", "DEIS quadratic time", "8 model calls"),
    "5": ("SEEDS-2, SEEDS-3,", "ER-SDE, DEIS, iPNDM", "side by side"),
    "6": ("AMED Train Predictor", "AMED-Solver node,", "6 model calls"),
    "0": ("digits-cond, CFG 3,", "5 samplers side by side,", "seconds on a CPU"),
}
ACCENTS = ["#4f8fd8", "#d8894f", "#5fb07a", "#b86fd0", "#d0c04f", "#d05f6f"]


def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    path = "/usr/share/fonts/truetype/dejavu/DejaVuSans%s.ttf" % ("-Bold" if bold else "")
    if os.path.isfile(path):
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)  # Pillow's bundled font


def _wrap(draw, text: str, font, width: int) -> List[str]:
    lines, line = [], ""
    for word in text.split():
        trial = (line + " " + word).strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + ([line] if line else [])


def title_card(name: str, ckpt: str, path: str) -> None:
    """A square JPEG title card for the Browse Templates dialog: number, title, what it
    shows, and the checkpoint file it needs."""
    from PIL import Image, ImageDraw

    number, _, rest = name.partition(" ")
    head, _, sub = rest.partition(" - ")
    accent = ACCENTS[(int(number) - 1) % len(ACCENTS)] if number.isdigit() else ACCENTS[0]
    W, Hh = CARD_SIZE
    img = Image.new("RGB", CARD_SIZE, "#1d2029")
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 18, Hh], fill=accent)
    x, width = 48, W - 48 - 28
    d.text((x, 24), number, font=_font(120, True), fill=accent)
    big, y = _font(58, True), 44
    for line in _wrap(d, head, big, width - 100)[:2]:
        d.text((x + 100, y), line, font=big, fill="#ffffff")
        y += 66
    y = max(y + 30, 190)
    mid = _font(42, True)
    for line in _wrap(d, sub, mid, width)[:3]:
        d.text((x, y), line, font=mid, fill="#e8e8e8")
        y += 50
    y += 20
    body = _font(38)
    for line in CARD_TEXT.get(number, ()):
        d.text((x, y), line, font=body, fill=accent)
        y += 46
    size = 26
    while size > 12 and d.textlength("needs " + ckpt, font=_font(size)) > W - x - 16:
        size -= 1
    d.text((x, Hh - 50), "needs " + ckpt, font=_font(size), fill="#aab0ba")
    img.save(path, "JPEG", quality=85, optimize=True)


def amed_train_and_sample(defs: Dict[str, Any]) -> Dict[str, Any]:
    """Workflow 6: train an AMED predictor on the loaded model, then sample with it."""
    g = Graph(defs)
    ck_name = "v1-5-pruned-emaonly-fp16.safetensors"
    ck, pos, neg, lat = _sd_front(g, ck_name, "a lighthouse on a rocky coast at sunset, dramatic clouds, photorealistic")
    g.nodes[0]["size"] = [770, 300]
    g.nodes[0]["pos"] = [0, -340]
    sig = g.node("SS_Sigmas_logsnr_uniform", (0, 520), {"steps": 4, "denoise": 1.0}, size=(340, 86))
    g.link(ck, 0, sig, "model")
    tr = g.node("SS_AMED_Train", (800, 0), {"cfg": 7.0, "trajectories": 256, "filename_prefix": "amed_sd15_logsnr4"})
    for src, name in ((ck, "model"), (pos, "positive"), (neg, "negative"), (sig, "sigmas"), (lat, "latent_image")):
        g.link(src, 0, tr, name)
    sm = g.node("SS_Sampler_amed_solver", (1170, 0))
    g.link(tr, 0, sm, "predictor")
    _sampler_custom(g, (1170, 170), 7.0, ck, pos, neg, sm, sig, lat, ck, "ss_amed")
    return g.to_json()


def digits_try_it(defs: Dict[str, Any], samplers: List[str]) -> Dict[str, Any]:
    """Workflow 0: the shipped digits-cond model through the stock KSampler with several of
    the pack's samplers at one seed, CFG through ComfyUI's own positive / negative, batched
    into one image: seconds on a CPU, nothing to download."""
    g = Graph(defs)
    col, gap = 340, 20
    g.node("Note", (2 * (col + gap), 0), {"text": ""}, size=(3 * col + 2 * gap, 250), title="Read me")
    ld = g.node("SS_DigitsLoader", (0, 0), {"model_name": "digits-cond"}, size=(col, 80))
    lat = g.node("SS_DigitsLatent", (0, 130), {"batch_size": 8}, size=(col, 80))
    pos = g.node("SS_DigitsLabel", (col + gap, 0), {"label": "3"}, size=(col, 80), title="Positive: digit",
                 color=("#232", "#353"))
    neg = g.node("SS_DigitsLabel", (col + gap, 130), {"label": "none"}, size=(col, 80), title="Negative: no label",
                 color=("#322", "#533"))
    y = 300
    batch, width = _sampler_row(g, samplers, y, col, gap, {"steps": 10, "cfg": 3.0}, ld, pos, neg, lat)
    dec = g.node("SS_DigitsDecode", (width - col, y + 300), {"scale": 2}, size=(col, 80))
    g.link(batch, 0, dec, "samples")
    save = g.node("SaveImage", (0, y + 430), {"filename_prefix": "ss_digits"}, size=(width, 330))
    g.link(dec, 0, save, "images")
    return g.to_json()


# --- the notes, written from the widget values of the graph they describe ------------------
class Widgets:
    """The widget values of a workflow's nodes by widget name (the file's own values), with
    the nodes in the order of the file."""

    def __init__(self, wf: Dict[str, Any], defs: Dict[str, Dict[str, Any]]):
        self.values: List[Tuple[str, Dict[str, Any]]] = []
        for n in wf["nodes"]:
            if n["type"] in defs:
                self.values.append((n["type"], dict(zip(widget_names(defs[n["type"]]), n.get("widgets_values") or []))))

    def all(self, ntype: str) -> List[Dict[str, Any]]:
        return [v for t, v in self.values if t == ntype]

    def one(self, ntype: str) -> Dict[str, Any]:
        found = self.all(ntype)
        if len(found) != 1:
            raise ValueError(f"the note describes one {ntype} node; the graph has {len(found)}")
        return found[0]


def _menu_settings(spec) -> str:
    return ", ".join(f"{k} {v}" for k, v in spec.menu.items())


def _choice_formula(spec, param: str, value: str) -> str:
    """``"phi(s) = <formula>; "`` for a choice of a registry parameter whose description gives
    it (``name = formula`` items), else ``""``."""
    import re

    desc = next(p.description for p in spec.params if p.name == param)
    m = re.search(rf"\b{re.escape(value)} = (.+?)(?: \(|, |\.? ?$)", desc)
    return f"phi(s) = {m.group(1)}; " if m else ""


def _same(values: List[Any]) -> Any:
    return values[0] if len(set(values)) == 1 else None


def note_sd15(w: Widgets) -> str:
    ks = w.one("KSampler")
    spec = _spec(ks["sampler_name"])
    calls = _calls(spec.host_name)
    return (checkpoint_line(w.one("CheckpointLoaderSimple")["ckpt_name"]) + "\n\n"
            f"SD1.5 text-to-image with {spec.title} picked in the stock KSampler's sampler_name dropdown "
            f"({spec.host_name}).\n"
            "Every ss_* entry of the dropdown runs its solver with its recommended settings; the scheduler dropdown "
            f"also has {_schedulers()}. {spec.title} makes {calls} model calls per step: {ks['steps']} steps cost "
            f"about as much as {ks['steps'] * calls} Euler steps.")


def note_sdxl(w: Widgets) -> str:
    er, sig = w.one("SS_Sampler_er_sde"), w.one("SS_Sigmas_logsnr_uniform")
    spec = _spec("ss_er_sde")
    nsf = er["noise_scale_function"]
    paper = next(p.default for p in spec.params if p.name == "noise_scale_function")
    t_er, t_sig = title("SS_Sampler_er_sde"), title("SS_Sigmas_logsnr_uniform")
    return (checkpoint_line(w.one("CheckpointLoaderSimple")["ckpt_name"]) + "\n\n"
            f"SDXL with SamplerCustom, the {t_er} node and the {t_sig} node.\n"
            f"{t_er}: order {er['order']}, noise-scale function {nsf} ({_choice_formula(spec, 'noise_scale_function', nsf)}"
            + ("the paper's default" if nsf == paper else f"the paper's default is {paper}")
            + f"), expansion {er['expansion']}"
            + {"sigma": " (the paper's)", "lambda": " (Taylor in half-log-SNR; the paper's is sigma)",
               "midpoint": " (D at each step's half-log-SNR midpoint, the rule of dpmpp_2m_sde; the paper's is "
                           "sigma)",
               "auto": " (half-log-SNR: the midpoint rule of dpmpp_2m_sde on SDXL, the exact weight on flow models; "
                       "the paper's is sigma)"}[er["expansion"]]
            + (", with the corrector (each step redone once the model's next output is known, no extra call)"
               if er.get("corrector") else "")
            + (f", first order on a step over {er['long_step_ratio']:g} times longer than the one before (the end of "
               "the normal scheduler; this schedule has none)" if er.get("long_step_ratio") else "")
            + f", eta {er['eta']}, noise from noise_start {er['noise_start']} to noise_end {er['noise_end']}; "
            f"eta 0 turns it into the ODE solver. {t_sig} spaces the {sig['steps']} steps evenly in log-SNR over the "
            "model's own sigma range (the SEEDS / DPM-Solver schedule).")


def note_flow(w: Widgets) -> str:
    spec = _spec("ss_seeds_2")
    node_id = "SS_Sampler_" + spec.id
    node, sched = w.one(node_id), w.one("BasicScheduler")
    changed = {k: v for k, v in node.items() if v != dict(spec.menu).get(k, next(
        p.default for p in spec.params if p.name == k))}
    here = "; here " + ", ".join(f"{k} is {v}" for k, v in changed.items()) if changed else ""
    eta = ("between the deterministic solver (0) and the paper's SDE (1): compare both ends on your model"
           if "eta" in changed and 0 < node["eta"] < 1 else "compare eta 0 (deterministic) and 1 (the paper's SDE)")
    return (checkpoint_line(w.one("CheckpointLoaderSimple")["ckpt_name"]) + "\n\n"
            "A rectified-flow model (SD3 / SD3.5; same graph for Flux-style models with their loaders) with the "
            f"{title(node_id)} node through SamplerCustom.\n"
            f"ModelSamplingSD3 sets the flow time shift ({w.one('ModelSamplingSD3')['shift']}); the sampler detects the "
            f"flow model (alpha = 1 - sigma) by itself. The node starts at the settings of {spec.host_name} in the "
            f"KSampler dropdown ({_menu_settings(spec)}){here}, {eta}. BasicScheduler: {sched['scheduler']}, "
            f"{sched['steps']} steps.")


def note_deis(w: Widgets) -> str:
    sel, sig = w.one("KSamplerSelect"), w.one("SS_Sigmas_deis_quadratic")
    spec = _spec(sel["sampler_name"])
    calls = _calls(spec.host_name)
    return (checkpoint_line(w.one("CheckpointLoaderSimple")["ckpt_name"]) + "\n\n"
            f"{spec.title} at {sig['steps']} steps: a deterministic multistep solver, {calls} model call"
            f"{'s' if calls != 1 else ''} per step, strong at low step counts (works the same for SDXL).\n"
            f"KSamplerSelect picks {spec.host_name} from the sampler dropdown; {title('SS_Sigmas_deis_quadratic')} "
            f"gives DEIS's own quadratic-time step spacing (kappa {sig['kappa']}) over the model's timesteps.")


def _row_of_samplers(w: Widgets) -> Tuple[List[str], str]:
    ks = w.all("KSampler")
    seed = _same([k["seed"] for k in ks])
    seeds = (f"they are all set to the same fixed seed, {seed}" if seed is not None
             else "their seeds differ: set them equal to compare samplers")
    return [k["sampler_name"] for k in ks], seeds


def note_grid(w: Widgets) -> str:
    samplers, seeds = _row_of_samplers(w)
    return (checkpoint_line(w.one("CheckpointLoaderSimple")["ckpt_name"]) + "\n\n"
            "The same prompt, seed and step count through several samplers of this pack. The results are batched in "
            "this order (left to right in Save Image): " + ", ".join(samplers) + ".\n"
            f"Change the seed on every KSampler together ({seeds}) or swap any sampler_name for another ss_* or "
            "built-in entry.")


def note_amed(w: Widgets) -> str:
    tr, sig, smp = w.one("SS_AMED_Train"), w.one("SS_Sigmas_logsnr_uniform"), w.one("SS_Sampler_amed_solver")
    t = title
    steps = sig["steps"]
    afs = tr["afs"]
    spec = _spec("ss_amed_solver")
    # the last step is a plain denoise (one call); the analytical first step saves the first
    # step's first call; stop_at_sigma_min drops the final denoise
    calls = spec.calls(afs=False) * (steps - 1) - int(afs) + 1
    return (checkpoint_line(w.one("CheckpointLoaderSimple")["ckpt_name"]) + "\n\n"
            f"AMED (Zhou et al. 2024): train a predictor for YOUR model, prompt style, CFG and schedule, then sample "
            f"with it. {t('SS_AMED_Train')} distils a fine ODE solve into one learned intermediate time per step (from "
            f"the U-Net bottleneck feature); it runs once (ComfyUI caches it) and saves "
            f"models/amed/{tr['filename_prefix']}_00001.safetensors (the next free number). Next time use "
            f"{t('SS_AMED_Load')} instead. {t('SS_Sampler_amed_solver')} then uses the predictor.\n"
            f"Keep the SIGMAS ({t('SS_Sigmas_logsnr_uniform')}, {steps} steps), the CFG ({tr['cfg']}) and the image "
            "size the same for training and sampling: a predictor only works on the grid it was trained on. "
            f"{steps} steps = {steps - 1} AMED steps" + (" with the analytical first step" if afs else "")
            + f" + the final denoise = {calls} model calls ({calls - 1} with stop_at_sigma_min"
            + (", set here" if smp["stop_at_sigma_min"] else "") + f"). Training: {tr['trajectories']} "
            f"trajectories with loss {tr['loss']}, a few minutes on a GPU; the loss widget's tooltip says what each "
            "choice weighs and docs/amed.md which one the shipped predictors used and why.")


DIGITS_LINE = "NEEDS nothing to download: the digits models ship with the pack (digits/weights/)."


def note_digits(w: Widgets) -> str:
    samplers, seeds = _row_of_samplers(w)
    ks = w.all("KSampler")
    labels = w.all("SS_DigitsLabel")
    steps, cfg = _same([k["steps"] for k in ks]), _same([k["cfg"] for k in ks])
    model = w.one("SS_DigitsLoader")["model_name"]
    n = w.one("SS_DigitsLatent")["batch_size"]
    scale = w.one("SS_DigitsDecode")["scale"]
    return (DIGITS_LINE + "\n\n"
            f"Try the samplers on a CPU in seconds: {title('SS_DigitsLoader')} loads {model} (a small network trained "
            f"on MNIST digits, 32x32 pixels) as an ordinary MODEL; {title('SS_DigitsLatent')} gives {n} digits per "
            "KSampler, " + ", ".join(samplers) + f" ({steps} steps, CFG {cfg}; {seeds}); {title('SS_DigitsDecode')} "
            f"shows them {scale}x enlarged, left to right in Save Image.\n"
            f"{title('SS_DigitsLabel')}: the digit on positive ({labels[0]['label']}), 'none' (no label) on negative; "
            "KSampler's cfg scales their difference as for a text prompt. digits-eps (SD's eps schedule) and "
            "digits-flow (rectified flow, as SD3 / Flux) are unconditional: set both labels to 'none'.")


# name -> (graph builder, note writer)
WORKFLOWS = {
    "0 Try it without a download - digits models on the CPU": (lambda defs: digits_try_it(
        defs, ["ss_seeds_2", "ss_er_sde", "ss_deis", "ss_ipndm", "euler"]), note_digits),
    "1 SD1.5 txt2img - SEEDS-2 in the KSampler dropdown": (sd15_ksampler, note_sd15),
    "2 SDXL - SamplerCustom with ER-SDE and a logSNR schedule": (sdxl_er_sde, note_sdxl),
    "3 Flow model (SD3) - SEEDS with ModelSamplingSD3": (flow_seeds, note_flow),
    "4 DEIS at 8 steps": (deis_low_steps, note_deis),
    "5 Comparison grid - several samplers, same seed": (lambda defs: comparison_grid(
        defs, ["ss_seeds_2", "ss_seeds_3", "ss_er_sde", "ss_deis", "ss_ipndm"]), note_grid),
    "6 AMED train and sample": (amed_train_and_sample, note_amed),
}


def note_nodes(wf: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [n for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote")]


def write_note(name: str, wf: Dict[str, Any], defs: Dict[str, Dict[str, Any]]) -> str:
    """The note of workflow ``name`` as its writer makes it from ``wf``'s widget values."""
    return WORKFLOWS[name][1](Widgets(wf, defs))


def build(name: str, defs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Workflow ``name``: its graph, then its note written from the graph's widget values."""
    wf = WORKFLOWS[name][0](defs)
    (note,) = note_nodes(wf)
    note["widgets_values"] = [write_note(name, wf, defs)]
    return wf


# --- the generated tables of docs/comfyui.md --------------------------------------------
DOCS_PAGE = os.path.join(REPO, "docs", "comfyui.md")


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def nodes_markdown() -> str:
    """The node table: one row per node, inputs with the defaults a new node shows."""
    from seeds_samplers.nodes import node_definitions

    classes, names = node_definitions()
    rows = ["| node | id | inputs (default) |", "|---|---|---|"]
    order = sorted(classes, key=lambda k: (getattr(classes[k], "DEPRECATED", False), not k.startswith("SS_Sampler_")))
    for node_id in order:
        cls = classes[node_id]
        req = cls.INPUT_TYPES()["required"]
        inputs = ", ".join(f"`{k}`" if "default" not in o else f"`{k}` {_fmt(o['default'])}"
                           for k, (t, o) in req.items())
        title = names.get(node_id, node_id)
        if getattr(cls, "DEPRECATED", False):
            title += " — hidden; loads 0.1.0 workflows"
        rows.append(f"| **{title}** | `{node_id}` | {inputs} |")
    return "\n".join(rows) + "\n"


def checkpoints_markdown() -> str:
    """Which example workflow expects which checkpoint file in models/checkpoints/."""
    used: Dict[str, List[str]] = {}
    for name, wf in sorted(load_workflows().items()):  # every file in workflows/, built here or not
        for n in wf["nodes"]:
            if n["type"] == "CheckpointLoaderSimple":
                used.setdefault(n["widgets_values"][0], []).append(name.split(" ", 1)[0])
    rows = [f"| file in `{CHECKPOINT_DIR}` | model | where from | workflows | or |", "|---|---|---|---|---|"]
    for ckpt, wfs in used.items():
        what, source, alternative = CHECKPOINTS.get(ckpt, ("see the workflow's note", "—", "—"))
        rows.append(f"| `{ckpt}` | {what} | {source} | {', '.join(wfs)} | {alternative} |")
    return "\n".join(rows) + "\n"


# what each workflow shows, for the workflow table of docs/comfyui.md
WORKFLOW_SHOWS = {
    "0 Try it without a download - digits models on the CPU":
        "the shipped *digits-cond* model (*Digits Model Loader (SS)*), digit 3 with CFG through the stock KSampler, "
        "SEEDS-2, ER-SDE, DEIS, iPNDM and Euler side by side; seconds on a CPU, nothing to download",
    "1 SD1.5 txt2img - SEEDS-2 in the KSampler dropdown": "the stock KSampler with `ss_seeds_2`",
    "2 SDXL - SamplerCustom with ER-SDE and a logSNR schedule":
        "SamplerCustom + *ER-SDE-Solver Sampler (SS)* + *logSNR uniform Schedule (SS)*",
    "3 Flow model (SD3) - SEEDS with ModelSamplingSD3":
        "SD3.5 with ModelSamplingSD3 and *SEEDS-2 Sampler (SS)* (eta 0.5, otherwise the `ss_seeds_2` settings)",
    "4 DEIS at 8 steps": "KSamplerSelect `ss_deis` + *DEIS quadratic time Schedule (SS)*, 8 steps",
    "5 Comparison grid - several samplers, same seed":
        "SEEDS-2, SEEDS-3, ER-SDE, DEIS and iPNDM at one seed, results side by side in one Save Image; fits a "
        "1600 × 1000 window at about 80 % zoom",
    "6 AMED train and sample":
        "*AMED Train Predictor (SS)* trains a predictor on the loaded model and saves it to `models/amed`; "
        "*AMED-Solver Sampler (SS)* samples with it (4 steps, 6 model calls)",
}


def workflows_markdown() -> str:
    """The workflow table: every file in workflows/ and what it shows."""
    rows = ["| workflow | shows |", "|---|---|"]
    for name in sorted(load_workflows()):
        rows.append(f"| {name} | {WORKFLOW_SHOWS[name]} |")
    return "\n".join(rows) + "\n"


def entries_markdown() -> str:
    """The menu entries: every sampler (and its menu variants) and schedule of the registries."""
    from seeds_samplers.samplers.cfg_pp import menu_entries
    from seeds_samplers.samplers.schedules import SCHEDULES

    samplers = ", ".join(f"`{s.host_name}`" for s in menu_entries(cfg_pp=False))
    schedules = ", ".join(f"`{s.host_name}`" for s in SCHEDULES.values())
    return ("| where | what you get |\n|---|---|\n"
            f"| **KSampler**, **KSamplerAdvanced** `sampler_name`, **KSamplerSelect** | {samplers}: each runs "
            "its solver with its menu entry's settings |\n"
            f"| **KSampler**, **KSamplerAdvanced**, **BasicScheduler** `scheduler` | {schedules}: the papers' "
            "schedules over the model's own sigma range (flow models included) |\n")


def generated_blocks() -> Dict[str, str]:
    return {"entries": entries_markdown(), "nodes": nodes_markdown(), "checkpoints": checkpoints_markdown(),
            "workflows": workflows_markdown()}


def rewrite_docs(path: str = DOCS_PAGE) -> None:
    import re

    with open(path, encoding="utf-8") as f:
        text = f.read()
    for key, block in generated_blocks().items():
        text, n = re.subn(rf"(<!-- {key}:start -->\n).*?(<!-- {key}:end -->)",
                          lambda m: m.group(1) + block + m.group(2), text, flags=re.S)
        if n != 1:
            raise ValueError(f"{path} needs one <!-- {key}:start --> ... <!-- {key}:end --> block")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote", path)


def main() -> None:
    defs = offline_definitions()
    os.makedirs(WORKFLOW_DIR, exist_ok=True)
    for name in WORKFLOWS:
        path = os.path.join(WORKFLOW_DIR, name + ".json")
        wf = build(name, defs)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(wf, f, indent=1)
            f.write("\n")
        ckpt = next((n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "CheckpointLoaderSimple"),
                    "nothing: the models ship with the pack")
        title_card(name, ckpt, os.path.join(WORKFLOW_DIR, name + ".jpg"))
        print("wrote", path, "and its thumbnail")
    if os.path.isfile(DOCS_PAGE):
        rewrite_docs()


if __name__ == "__main__":
    main()
