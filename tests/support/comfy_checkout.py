"""The ComfyUI checkout the real-ComfyUI tests use: ``COMFYUI_ROOT``, checked, and a way to
import from it in the test process that leaves nothing behind.

The tests ask for it through the fixtures in tests/conftest.py (``comfyui_root``,
``comfyui_imports``); without a checkout (as in CI) they skip with :data:`SKIP_REASON`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional

SKIP_REASON = ("COMFYUI_ROOT is not set to a ComfyUI checkout (a folder with main.py and comfy/): "
               "the real-ComfyUI tests need one, and a Python with its requirements")


def comfyui_root() -> Optional[str]:
    """``COMFYUI_ROOT`` as an absolute path if it holds a ComfyUI checkout, else None."""
    root = os.environ.get("COMFYUI_ROOT")
    if not root or not (os.path.isfile(os.path.join(root, "main.py"))
                        and os.path.isfile(os.path.join(root, "comfy", "samplers.py"))):
        return None
    return os.path.abspath(root)


def missing_requirements() -> Optional[str]:
    """Why this Python cannot run ComfyUI, or None. aiohttp (ComfyUI's server) stands for
    its requirements: a Python without it is not ComfyUI's."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "this Python lacks ComfyUI's requirements (aiohttp); use ComfyUI's venv"
    return None


def _loaded_from(module: object, root: str) -> bool:
    inside = root + os.sep
    try:
        # a namespace package's __path__ is recomputed on iteration from its parent module
        # and sys.path: read it while both are still in place (see importable)
        paths = list(getattr(module, "__path__", None) or [])
    except (KeyError, AttributeError, TypeError):
        paths = []
    files = [getattr(module, "__file__", None)] + paths
    return any(isinstance(f, str) and os.path.abspath(f).startswith(inside) for f in files)


@contextlib.contextmanager
def importable(root: str) -> Iterator[str]:
    """``root`` first on ``sys.path`` inside the block (``import comfy`` finds the checkout);
    afterwards the entry is gone, every module loaded from the checkout is dropped from
    ``sys.modules`` (a module it replaced under the same name, such as a stand-in
    ``comfy``, is put back), so later tests import what they would have without it."""
    before = dict(sys.modules)
    sys.path.insert(0, root)
    try:
        yield root
    finally:
        # which modules came from the checkout: decided before anything is removed
        loaded = [(name, module) for name, module in list(sys.modules.items())
                  if before.get(name) is not module and _loaded_from(module, root)]
        if root in sys.path:
            sys.path.remove(root)
        for name, module in loaded:
            if name in before:
                sys.modules[name] = before[name]
            else:
                del sys.modules[name]
