"""A headless ComfyUI server on 127.0.0.1 for the real-ComfyUI tests (``main.py --cpu``
from the checkout, in a subprocess), with an ``extra_model_paths`` yaml naming the
checkpoint folder and the custom_nodes folders in load order, and its HTTP API.

The checkout may be a user's ordinary install, with this pack (and others) in its own
``custom_nodes`` and models in its ``models``. The server never reads or writes them: it
runs with ``--base-directory`` set to a fresh folder of the test's work directory, so its
default ``custom_nodes`` and ``models`` (e.g. the ``models/amed`` AMED training saves into)
are empty temporary folders, and only the custom_nodes folders a test names are loaded --
the pack once, from the copy under test. An ``extra_model_paths.yaml`` in the checkout,
which ComfyUI reads whatever the flags, is refused if it names custom_nodes folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterable, Optional, Tuple

from . import free_port


# the checkout's folders a server started from it could write into by default
CHECKOUT_DATA_DIRS = ("models", "output", "input", "user", "temp", "custom_nodes")


def checkout_files(root: str) -> Dict[str, Tuple[int, float]]:
    """``{path: (size, mtime)}`` of the files in the checkout's data folders (links not
    followed): taken before and after a test, equal when the test wrote nothing there."""
    out = {}
    for sub in CHECKOUT_DATA_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, sub)):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime)
    return out


def refuse_checkout_custom_nodes_config(root: str) -> None:
    """Raise if the checkout's own ``extra_model_paths.yaml`` (loaded by every ComfyUI started
    from it) names custom_nodes folders: a copy of the pack there would load beside the one
    under test."""
    path = os.path.join(root, "extra_model_paths.yaml")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.split("#", 1)[0] for line in f]
    if any(line.strip().startswith("custom_nodes:") for line in lines):
        raise RuntimeError(
            f"{path} names custom_nodes folders, which every ComfyUI started from {root} loads: the tests would "
            "load this pack twice (the copy there and the copy under test). Run them with COMFYUI_ROOT set to a "
            "checkout without custom_nodes entries in extra_model_paths.yaml (or comment those lines out).")


class ComfyServer:
    """``main.py --cpu`` of the checkout ``root`` on 127.0.0.1 with the given custom_nodes
    directories (in load order) and checkpoint directory; log in ``<workdir>/server.log``."""

    def __init__(self, root: str, workdir: str, checkpoints_dir: str, custom_node_dirs: Iterable[str],
                 python: str = sys.executable, extra_args: Iterable[str] = ()):
        self.root = root
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "server.log")
        self.output_dir = os.path.join(workdir, "output")
        for sub in ("output", "input", "user", "temp"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        # ComfyUI's own folders (custom_nodes, models/...) for this server only: the checkout's stay unread
        self.base_dir = os.path.join(workdir, "comfyui_base")
        for sub in ("custom_nodes", "models"):
            os.makedirs(os.path.join(self.base_dir, sub), exist_ok=True)
        refuse_checkout_custom_nodes_config(root)
        yaml_path = os.path.join(workdir, "extra_model_paths.yaml")
        with open(yaml_path, "w") as f:
            for i, d in enumerate(custom_node_dirs):
                f.write(f"nodes_{i}:\n    custom_nodes: {d}\n")
            f.write(f"models:\n    checkpoints: {checkpoints_dir}\n")
        self.cmd = [
            python, os.path.join(root, "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", self.base_dir, "--extra-model-paths-config", yaml_path,
            "--output-directory", self.output_dir,
            "--input-directory", os.path.join(workdir, "input"), "--user-directory", os.path.join(workdir, "user"),
            "--temp-directory", os.path.join(workdir, "temp"), "--database-url", "sqlite:///:memory:",
            "--disable-auto-launch", "--preview-method", "none", *extra_args,
        ]
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 300) -> "ComfyServer":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=self.root, stdout=self._log,
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
