"""Screenshots of the pack in ComfyUI's own page (README images, workflow thumbnails).

    COMFYUI_ROOT=/path/to/ComfyUI python -m tests.support.comfy_screenshots   # from the repository root

Run it with a Python that has ComfyUI's requirements plus ``playwright`` (the Python
package only: it drives the system Chromium, ``/usr/bin/chromium`` or $CHROMIUM, headless;
no browser download). It starts a local ComfyUI server on 127.0.0.1 with this pack,
opens the page and writes ``docs/images/comfyui_*.png``: the nodes, the KSampler dropdown
and the Browse Templates dialog for the README and docs/comfyui.md. (The template
thumbnails ``workflows/<name>.jpg`` are title cards written by tests/support/workflow_builder.py;
tests/test_comfyui_browser.py calls :func:`readme_screenshots` with SS_SCREENSHOTS=1.)

``--gmm`` instead writes ``docs/images/example_outputs_gmm.png`` (no ComfyUI needed): the
menu entries sampling the package's exact test model, since the integration tests'
random checkpoint only makes noise.

Not a test: pytest does not collect it (no ``test_`` prefix).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import REPO, asset_cache
from .comfy_checkout import SKIP_REASON, comfyui_root
from .comfy_server import ComfyServer
from .comfy_workflows import load_workflows

DOCS = os.path.join(REPO, "docs", "images")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

FIT_JS = """
([pad, onlyIds]) => {
  const c = app.canvas, nodes = app.graph._nodes.filter(n => !onlyIds || onlyIds.includes(n.id));
  let x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
  for (const n of nodes) {
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 30);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const W = c.canvas.clientWidth, H = c.canvas.clientHeight;
  const s = Math.min((W - 2 * pad) / (x1 - x0), (H - 2 * pad) / (y1 - y0), 1.3);
  c.ds.scale = s;
  c.ds.offset = [(W / s - (x1 - x0)) / 2 - x0, (H / s - (y1 - y0)) / 2 - y0];
  c.setDirty(true, true);
  return [x0, y0, x1, y1, s];
}
"""


def _save_png(png: bytes, path: str, width: int = 1200) -> None:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img = img.quantize(colors=192, method=Image.Quantize.MEDIANCUT)
    img.save(path, "PNG", optimize=True)


@contextlib.contextmanager
def _page(browser, url: str, size: Tuple[int, int], ready: str, timeout: float) -> Iterator[Any]:
    """A fresh page on ``url`` once the JS condition ``ready`` holds and the frontend's
    extensions have had 1.5 s to settle; closed afterwards."""
    page = browser.new_page(viewport={"width": size[0], "height": size[1]}, device_scale_factor=1)
    try:
        page.goto(url, wait_until="load", timeout=timeout)
        page.wait_for_function(ready, timeout=timeout)
        page.wait_for_timeout(1500)
        yield page
    finally:
        page.close()


def _load(page, workflow: Dict[str, Any]) -> None:
    page.evaluate("async (wf) => { await app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(800)


def _fit(page, pad: int, node_ids: Optional[List[int]]) -> None:
    page.evaluate(FIT_JS, [pad, node_ids])
    page.wait_for_timeout(500)


def readme_screenshots(browser, url: str, work: str, timeout: float = 300_000) -> None:
    """``docs/images/comfyui_*.png`` from a running ComfyUI with this pack (``browser``: a
    playwright Chromium). Used by this script and by tests/test_comfyui_browser.py."""
    os.makedirs(DOCS, exist_ok=True)
    workflows = load_workflows()
    names = sorted(workflows)
    with _page(browser, url, (2000, 1125), "() => window.app && window.app.graph && window.app.canvas",
               timeout) as page:
        page.evaluate("() => { app.canvas.show_info = false; }")
        page.add_style_tag(content=HIDE_UI_CSS)
        canvas = page.locator("#graph-canvas")
        # README: our nodes feeding SamplerCustom (workflow 2)
        _load(page, workflows[names[1]])
        ids = page.evaluate("() => app.graph._nodes.filter(n => n.type.startsWith('SS_') || n.type === 'SamplerCustom').map(n => n.id)")
        _fit(page, 20, ids)
        _save_png(canvas.screenshot(), os.path.join(DOCS, "comfyui_samplercustom.png"))
        page.evaluate(NODES_JS)
        page.wait_for_timeout(800)
        _fit(page, 20, None)
        _save_png(canvas.screenshot(), os.path.join(DOCS, "comfyui_nodes.png"))
        # the KSampler dropdown with our entries (workflow 1)
        _load(page, workflows[names[0]])
        ks = page.evaluate("() => app.graph._nodes.find(n => n.type === 'KSampler').id")
        _fit(page, 200, [ks])
        x, y = page.evaluate(WIDGET_POS_JS, [ks, "sampler_name"])
        box = canvas.bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(800)
        page.keyboard.type("ss_")
        page.wait_for_timeout(500)
        shot = os.path.join(work, "dropdown.png")
        page.screenshot(path=shot, clip={"x": box["x"] + x - 420, "y": box["y"] + y - 330, "width": 900, "height": 520})
        with open(shot, "rb") as f:
            _save_png(f.read(), os.path.join(DOCS, "comfyui_ksampler_dropdown.png"))
    # README: Browse Templates with the pack's workflows (a fresh page, no CSS changes)
    with _page(browser, url, (1600, 1000), "() => window.app && window.app.graph", timeout) as page:
        page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.BrowseTemplates'); }")
        page.get_by_text("seeds_samplers", exact=True).first.click(timeout=60_000)
        page.locator('[data-testid^="template-workflow-"] img').first.wait_for(timeout=60_000)
        page.wait_for_timeout(2500)
        _save_png(page.screenshot(), os.path.join(DOCS, "comfyui_browse_templates.png"), width=1000)


def main() -> None:
    root = comfyui_root()
    if root is None:
        sys.exit(SKIP_REASON)
    from playwright.sync_api import sync_playwright

    work = tempfile.mkdtemp(prefix="ss_shots_")
    nodes_dir = os.path.join(work, "custom_nodes")
    os.makedirs(nodes_dir)
    os.symlink(REPO, os.path.join(nodes_dir, "seeds_samplers"))
    os.makedirs(os.path.join(work, "user", "default"), exist_ok=True)
    with open(os.path.join(work, "user", "default", "comfy.settings.json"), "w") as f:
        json.dump(SETTINGS, f)
    server = ComfyServer(root, work, asset_cache(), [nodes_dir]).start(timeout=600)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                readme_screenshots(browser, server.url, work)
            finally:
                browser.close()
    finally:
        server.stop()
    print("logs in", work)


# A first-run page without the tutorial and with the top menu (as the screenshots show).
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.UseNewMenu": "Top", "Comfy.Minimap.Visible": False}


# Only the graph: no side bars, tabs, toolbars (the dropdown menu is kept visible).
HIDE_UI_CSS = """
body * { visibility: hidden; }
#graph-canvas, .litecontextmenu, .litecontextmenu *, textarea { visibility: visible; }
"""

# A graph of every node of the pack, laid out in a row, for the README.
NODES_JS = """
() => {
  app.graph.clear();
  const ids = Object.keys(LiteGraph.registered_node_types)
    .filter(t => t.startsWith('SS_') && !LiteGraph.registered_node_types[t].nodeData?.deprecated);
  let x = 0, y = 0, col = 0, rowH = 0;
  for (const t of ids) {
    const n = LiteGraph.createNode(t);
    n.pos = [x, y];
    app.graph.add(n);
    x += n.size[0] + 40;
    rowH = Math.max(rowH, n.size[1]);
    if (++col % 3 === 0) { x = 0; y += rowH + 70; rowH = 0; }
  }
}
"""

# Canvas-space -> screen position of a node's widget (for clicking it).
WIDGET_POS_JS = """
([id, name]) => {
  const c = app.canvas, n = app.graph.getNodeById(id);
  const w = n.widgets.find(w => w.name === name);
  const wy = (w.last_y ?? w.y) + 10, wx = n.size[0] / 2;
  const s = c.ds.scale, o = c.ds.offset;
  return [(n.pos[0] + wx + o[0]) * s, (n.pos[1] + wy + o[1]) * s];
}
"""

def gmm_examples(path: str = os.path.join(DOCS, "example_outputs_gmm.png"), nfe: int = 12, n: int = 8) -> None:
    """Sample grid of every menu entry on the exact test model (a Gaussian mixture of
    32x32 photographs, :mod:`seeds_samplers.bench.gmm`), same seed, about ``nfe`` model
    calls each, logSNR-uniform schedule; the last row is exact samples of the mixture."""
    import torch
    from PIL import Image, ImageDraw

    from seeds_samplers.bench.gmm import AnalyticDenoiser
    from seeds_samplers.samplers.registry import SAMPLERS
    from seeds_samplers.samplers.schedules import SCHEDULES

    model = AnalyticDenoiser(kind="vp_discrete")
    rows, labels = [], []
    for spec in SAMPLERS.values():
        params = spec.menu_settings()
        steps = max(2, round((nfe - 1) / spec.calls(**params)) + 1)
        sigmas = SCHEDULES["logsnr_uniform"](steps, model.seeds_model_type)
        x = model.prior_sample(n, float(sigmas[0]), torch.Generator().manual_seed(0))
        out = spec.function(model, x, sigmas, extra_args={"seed": 0}, disable=True, **params)
        rows.append(out)
        labels.append(f"{spec.host_name}  ({steps} steps)")
    rows.append(model.mixture.sample(n, torch.Generator().manual_seed(0))[0])
    labels.append("exact samples of the test distribution")
    cell, label_w = 64, 250
    grid = Image.new("RGB", (label_w + n * (cell + 4), len(rows) * (cell + 4)), (30, 30, 30))
    draw = ImageDraw.Draw(grid)
    for r, (imgs, label) in enumerate(zip(rows, labels)):
        draw.text((8, r * (cell + 4) + cell // 2 - 6), label, fill=(230, 230, 230))
        for c in range(n):
            a = ((imgs[c].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            tile = Image.fromarray(a).resize((cell, cell), Image.NEAREST)
            grid.paste(tile, (label_w + c * (cell + 4), r * (cell + 4)))
    grid.save(path, optimize=True)
    print("wrote", path)


if __name__ == "__main__":
    if sys.argv[1:] == ["--gmm"]:
        gmm_examples()
    else:
        main()
