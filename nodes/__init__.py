"""ComfyUI integration: thin glue generated from the registries.

* :func:`setup_comfyui` (called by the pack's ``__init__`` when ComfyUI loads it) puts
  every sampler into the KSampler / KSamplerSelect dropdowns as ``ss_<id>`` and every
  schedule into the scheduler dropdown as ``ss_<id>`` (:mod:`.registration`), and
  returns the node classes (:mod:`.definitions`): one SAMPLER node per sampler family,
  one SIGMAS node per schedule.
* All ``comfy`` imports live in this package, and only :mod:`.registration` and the
  nodes' run methods need them; :func:`node_definitions` works without ComfyUI.
"""

from __future__ import annotations

import logging
from typing import Dict, Tuple

__all__ = ["setup_comfyui", "node_definitions"]

log = logging.getLogger("seeds_samplers")


def node_definitions() -> Tuple[Dict[str, type], Dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` without touching ComfyUI."""
    from .definitions import build_node_classes

    return build_node_classes()


def setup_comfyui() -> Tuple[Dict[str, type], Dict[str, str]]:
    """Register the dropdown entries and return the node mappings.

    Node classes are built first, so a failure leaves ComfyUI's lists untouched;
    registering again (the pack imported twice) adds nothing.
    """
    classes, names = node_definitions()
    from .registration import register_all

    summary = register_all()
    if summary["samplers"] or summary["schedulers"]:
        log.info("SEEDS Samplers: added samplers %s and schedulers %s to the dropdowns; %d nodes",
                 summary["samplers"], summary["schedulers"], len(classes))
    elif not summary["skipped"]:
        log.info("SEEDS Samplers: dropdown entries already registered by an earlier import; %d nodes", len(classes))
    if summary["skipped"]:
        log.warning("SEEDS Samplers: names already taken by another pack, left alone: %s", summary["skipped"])
    return classes, names
