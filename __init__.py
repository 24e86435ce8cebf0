"""SEEDS Samplers: a ComfyUI node pack and an A1111/Forge extension.

Outside ComfyUI this package imports as ``seeds_samplers`` and pulls in no host code.
Inside ComfyUI (which has imported ``comfy.samplers`` before it loads custom nodes) it
registers the samplers and exposes ``NODE_CLASS_MAPPINGS``. A failure there is logged
once and leaves ComfyUI running with no nodes from this pack.
"""

import logging
import sys

from .samplers import SAMPLERS  # noqa: F401  (the registry; pure torch)

__version__ = "0.1.0"

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

if "comfy.samplers" in sys.modules:  # loaded by ComfyUI
    try:
        from .nodes import setup_comfyui

        NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = setup_comfyui()
    except Exception:  # noqa: BLE001 - never stop ComfyUI from starting
        logging.getLogger(__name__).exception("SEEDS Samplers: ComfyUI integration failed to load")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "SAMPLERS", "__version__"]
