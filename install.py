"""Dependency check run by AUTOMATIC1111 / Forge / reForge at every start (and by
ComfyUI-Manager after an install): installs only what the running Python lacks.

The pack needs torch, numpy, safetensors and tqdm ([project] dependencies in
pyproject.toml), which every webui and ComfyUI already has, so this normally does
nothing and returns in milliseconds. It uses the webui's ``launch.run_pip`` when
``launch`` is importable (honouring --skip-install and the webui's index settings) and
``python -m pip`` otherwise. torch is never installed from here (a webui installs the
build that matches its GPU). It never raises: a failure is printed and start-up goes on.
"""

import importlib.util
import subprocess
import sys

# (import name, pip requirement): keep in step with pyproject.toml [project] dependencies
REQUIREMENTS = [("torch", "torch>=2.1"), ("numpy", "numpy"), ("safetensors", "safetensors"), ("tqdm", "tqdm")]
NEVER_INSTALL = {"torch"}


def missing(requirements=None):
    """The requirements whose module cannot be found."""
    requirements = REQUIREMENTS if requirements is None else requirements
    return [(mod, req) for mod, req in requirements if importlib.util.find_spec(mod) is None]


def _pip(req, mod):
    try:
        import launch  # the webui's launcher (PYTHONPATH is the webui root while install.py runs)
    except Exception:  # noqa: BLE001 - ComfyUI-Manager, plain Python
        launch = None
    if launch is not None and hasattr(launch, "run_pip"):
        if hasattr(launch, "is_installed") and launch.is_installed(mod):
            return
        launch.run_pip(f"install {req}", f"SEEDS Samplers requirement: {req}")
        return
    subprocess.run([sys.executable, "-m", "pip", "install", req], check=True)


def main():
    todo = missing()
    for mod, req in todo:
        if mod in NEVER_INSTALL:
            print(f"SEEDS Samplers: {mod} is not installed; install the build that matches your GPU")
            continue
        try:
            _pip(req, mod)
        except Exception as e:  # noqa: BLE001 - never stop the host from starting
            print(f"SEEDS Samplers: could not install {req}: {e}")
    return todo


if __name__ == "__main__":
    main()
