"""A real AUTOMATIC1111 / Forge / reForge webui for the tests: started from a prepared
checkout (``A1111_ROOT`` / ``FORGE_ROOT`` / ``REFORGE_ROOT``; its Python from
``<ROOT>/venv/bin/python`` or ``A1111_PYTHON`` / ``FORGE_PYTHON`` / ``REFORGE_PYTHON``),
with this repository linked into ``extensions/`` under an unusual folder name, CPU only,
bound to 127.0.0.1, no network.

The assets are built by the project's own code (tests/support/webui_assets.py, run with the
webui's Python and classes) and cached outside the repository in ``$SS_TEST_CACHE`` or
``~/.cache/seeds_samplers_tests/webui``: the CLIP tokenizer cache A1111 loads by name,
and a random-weight SD1.5 checkpoint (4.3 GB, fp32).

A second, test-only extension (written to a temporary folder) adds one route,
``POST /seeds-test/reload-ui``, that asks the webui for what its "Reload UI" button asks
(``shared.state.request_restart()``): the webui then re-runs every extension script.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

from seeds_samplers.webui.naming import SCHEDULE_SETTING

from . import REPO, asset_cache, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_NAME = "sd-webui-SEEDS_under_test"  # any folder name must work
HOSTS = {"a1111": "A1111_ROOT", "forge": "FORGE_ROOT", "reforge": "REFORGE_ROOT",
         "forge-classic": "FORGE_CLASSIC_ROOT", "forge-neo": "FORGE_NEO_ROOT"}
LOADS_ON_FIRST_USE = {"forge", "forge-neo"}  # start-up prints only "Model selected:"; no " loaded in " yet


RELOAD_EXTENSION = '''
from modules import script_callbacks, shared


def _routes(demo, app):
    @app.post("/seeds-test/reload-ui")
    def _reload_ui():
        state = shared.state
        if hasattr(state, "request_restart"):
            state.request_restart()
        else:
            state.need_restart = True
        return {"requested": True}


script_callbacks.on_app_started(_routes)
'''


def host_python(kind: str, root: str) -> str:
    py = os.environ.get(HOSTS[kind].replace("_ROOT", "_PYTHON"))
    return py or os.path.join(root, "venv", "bin", "python")


def skip_reason(kind: str) -> Optional[str]:
    var = HOSTS[kind]
    root = os.environ.get(var)
    if not root:
        return f"{var} is not set: the real-{kind} tests need a prepared webui checkout (see docs/a1111.md, Testing)"
    if not os.path.isfile(os.path.join(root, "launch.py")):
        return f"{var}={root} has no launch.py"
    if not os.path.isfile(host_python(kind, root)):
        return f"no Python for {kind}: {host_python(kind, root)} does not exist (set {var.replace('_ROOT', '_PYTHON')})"
    return None


def _run_asset(python: str, *args: str, env: Optional[dict] = None) -> None:
    r = subprocess.run([python, os.path.join(HERE, "webui_assets.py"), *args], capture_output=True, text=True,
                       env=env, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"building a test asset failed: {args}\n{r.stdout}\n{r.stderr}")


def clip_cache(python: str) -> str:
    hf_home = os.path.join(asset_cache("webui"), "hf_home")
    marker = os.path.join(hf_home, "hub", "models--openai--clip-vit-large-patch14", "refs", "main")
    if not os.path.isfile(marker):
        _run_asset(python, "clip-cache", hf_home)
    return hf_home


def checkpoint(kind: str, root: str, python: str) -> str:
    """The random SD1.5 checkpoint; built with ldm from a webui that has it (A1111, reForge,
    Forge Classic: ``repositories/stable-diffusion-stability-ai``), else from another prepared host."""
    out = os.path.join(asset_cache("webui"), "random-sd15.safetensors")
    if os.path.isfile(out):
        return out
    candidates = [(kind, root, python)] + [
        (k, os.environ[v], host_python(k, os.environ[v])) for k, v in HOSTS.items()
        if os.environ.get(v) and k != kind]
    for k, r, py in candidates:
        if os.path.isdir(os.path.join(r, "repositories", "stable-diffusion-stability-ai", "ldm")):
            env = dict(os.environ, HF_HOME=clip_cache(py), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            _run_asset(py, "checkpoint", r, out, env=env)
            return out
    raise RuntimeError("no prepared webui with repositories/stable-diffusion-stability-ai to build the "
                       "random checkpoint with (A1111_ROOT, REFORGE_ROOT or FORGE_CLASSIC_ROOT)")


class Webui:
    """One running webui (UI + API) with the extension linked."""

    def __init__(self, kind: str):
        self.kind = kind
        self.root = os.environ[HOSTS[kind]]
        self.python = host_python(kind, self.root)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.mkdtemp(prefix="ss_webui_")
        self.log_path = os.path.join(self.tmp, "webui.log")
        self.links: List[str] = []
        self.proc: Optional[subprocess.Popen] = None

    # --- lifecycle ----------------------------------------------------------------------
    def _link(self, src: str, name: str) -> None:
        dst = os.path.join(self.root, "extensions", name)
        if os.path.lexists(dst):
            if os.path.islink(dst) and os.path.realpath(dst) == os.path.realpath(src):
                self.links.append(dst)
                return
            raise RuntimeError(f"{dst} exists and is not a link to {src}")
        os.symlink(src, dst)
        self.links.append(dst)

    def start(self, timeout: float = 600) -> "Webui":
        ckpt = checkpoint(self.kind, self.root, self.python)
        reload_ext = os.path.join(self.tmp, "seeds-test-reload")
        os.makedirs(os.path.join(reload_ext, "scripts"))
        with open(os.path.join(reload_ext, "scripts", "seeds_test_reload.py"), "w") as f:
            f.write(RELOAD_EXTENSION)
        self._link(REPO, EXT_NAME)
        self._link(reload_ext, "seeds-test-reload")
        # the webui skips every extension's install.py with --skip-prepare-environment: run ours its way
        r = subprocess.run([self.python, os.path.join(REPO, "install.py")], cwd=self.root, capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=self.root), timeout=300)
        self.install_output = (r.returncode, r.stdout + r.stderr)
        env = dict(os.environ, IGNORE_CMD_ARGS_ERRORS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   PYTHONUNBUFFERED="1")
        if self.kind == "a1111":  # loads the CLIP tokenizer by name; the Forges ship theirs
            env["HF_HOME"] = clip_cache(self.python)
        env.pop("PYTHONPATH", None)
        cmd = [self.python, "launch.py", "--api", "--skip-prepare-environment", "--skip-torch-cuda-test",
               "--use-cpu", "all", "--no-half", "--no-download-sd-model", "--skip-version-check",
               "--server-name", "127.0.0.1", "--port", str(self.port)]
        # Neo has no --ckpt (argparse would take it for --ckpt-dirs): it lists the folder and picks the file there
        cmd += ["--ckpt-dirs", os.path.dirname(ckpt)] if self.kind == "forge-neo" else ["--ckpt", ckpt]
        if self.kind != "a1111":
            cmd.append("--always-cpu")
        if self.kind == "forge-neo":  # its default CPU attention (basic/split) reads a flag its parser lacks
            cmd.append("--attention-pytorch")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["nice", "-n", "10"] + cmd, cwd=self.root, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_for(lambda: self.log.count("Startup time:") >= 1, timeout, "the webui to start")
        self.wait_api(timeout)
        if self.kind not in LOADS_ON_FIRST_USE:
            self.wait_for(lambda: " loaded in " in self.log, timeout, "the model to load")
        self.has_schedule_menu = self._has_schedule_api()
        return self

    def _has_schedule_api(self) -> bool:
        try:
            self.get("/sdapi/v1/schedulers")
            return True
        except urllib.error.HTTPError as e:
            if e.code == 404:  # Forge Classic (A1111 1.8 base): the schedule is a setting
                return False
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        for link in self.links:
            if os.path.islink(link):
                os.unlink(link)
        self.links = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for(self, cond, timeout: float, what: str) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the webui exited while waiting for {what}:\n{self.log[-6000:]}")
            time.sleep(1)
        raise TimeoutError(f"timed out waiting for {what}:\n{self.log[-6000:]}")

    def wait_api(self, timeout: float) -> None:
        def up():
            try:
                self.get("/sdapi/v1/samplers", timeout=10)
                return True
            except (OSError, urllib.error.URLError):
                return False

        self.wait_for(up, timeout, "the API")

    def reload_ui(self, timeout: float = 600) -> None:
        n = self.log.count("Startup time:")
        self.post("/seeds-test/reload-ui", {})
        self.wait_for(lambda: self.log.count("Startup time:") > n, timeout, "Reload UI")
        self.wait_api(timeout)

    # --- schedules: a menu (A1111 >= 1.9, Forge, reForge) or a setting (Forge Classic) ---
    def schedules(self) -> List[Dict[str, str]]:
        """The schedule menu as ``[{"name", "label"}]``: ``/sdapi/v1/schedulers``, or the
        choices of the "Scheduler type" setting's dropdown in the UI's gradio config."""
        if self.has_schedule_menu:
            return [{"name": s["name"], "label": s["label"]} for s in self.get("/sdapi/v1/schedulers")]
        return [{"name": n, "label": n} for n in self.ui_choices("setting_" + SCHEDULE_SETTING)]

    def ui_choices(self, elem_id: str) -> List[str]:
        """The choices of the UI's dropdown / radio ``elem_id``, from gradio's ``/config``
        (Gradio 3: plain values; Gradio 4: ``[label, value]`` pairs)."""
        for c in self.get("/config").get("components", []):
            props = c.get("props", {})
            if props.get("elem_id") == elem_id:
                return [ch[-1] if isinstance(ch, (list, tuple)) else ch for ch in props.get("choices", [])]
        raise AssertionError(f"no UI component with elem_id {elem_id!r}")

    def schedule_request(self, label: str) -> Dict[str, Any]:
        """Request fields that pick the schedule ``label``."""
        if self.has_schedule_menu:
            return {"scheduler": label}
        return {"override_settings": {SCHEDULE_SETTING: label}}

    # --- HTTP -------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 60) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def post(self, path: str, payload: dict, timeout: float = 1800) -> Any:
        req = urllib.request.Request(self.base + path, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"POST {path} -> HTTP {e.code}: {e.read().decode()[:3000]}\n{self.log[-4000:]}")

    def txt2img(self, sampler: str, seed: int = 1, steps: int = 3, **extra) -> Dict[str, Any]:
        payload = dict(prompt="a photo of a cat", negative_prompt="", sampler_name=sampler, steps=steps,
                       width=64, height=64, cfg_scale=5.0, seed=seed, batch_size=1, n_iter=1,
                       send_images=True, save_images=False)
        payload.update(extra)
        payload.setdefault("override_settings", {})
        payload["override_settings"].setdefault("live_previews_enable", False)
        r = self.post("/sdapi/v1/txt2img", payload)
        r["info"] = json.loads(r["info"])
        return r

    def img2img(self, sampler: str, init_png_b64: str, seed: int = 1, steps: int = 4, **extra) -> Dict[str, Any]:
        payload = dict(prompt="a photo of a cat", sampler_name=sampler, steps=steps, width=64, height=64,
                       cfg_scale=5.0, seed=seed, denoising_strength=0.5, init_images=[init_png_b64],
                       send_images=True, save_images=False,
                       override_settings={"live_previews_enable": False})
        payload.update(extra)
        r = self.post("/sdapi/v1/img2img", payload)
        r["info"] = json.loads(r["info"])
        return r


def pixels(b64_png: str):
    """(size, RGB bytes) of a returned image."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64_png))).convert("RGB")
    return img.size, img.tobytes()


def mean_abs_diff(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / max(len(a), 1)


def infotext_fields(infotext: str) -> Dict[str, str]:
    """The ``key: value`` fields of the last infotext line (the generation parameters)."""
    import re

    line = infotext.strip().split("\n")[-1]
    out = {}
    for key, value in re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', line):
        out[key.strip()] = json.loads(value) if value.startswith('"') else value.strip()
    return out


__all__ = ["Webui", "skip_reason", "pixels", "mean_abs_diff", "infotext_fields", "EXT_NAME", "HOSTS"]
