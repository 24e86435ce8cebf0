"""ComfyUI integration: thin glue generated from the registries.

* :func:`setup_comfyui` (called by the pack's ``__init__`` when ComfyUI loads it) puts
  every sampler into the KSampler / KSamplerSelect dropdowns as ``ss_<id>`` and every
  schedule into the scheduler dropdown as ``ss_<id>`` (:mod:`.registration`), and
  returns the node classes (:mod:`.definitions`): one SAMPLER node per sampler, one
  SIGMAS node per schedule, and the hidden 0.1.0 family node(s) for old workflows.
* Hand-written node modules: a module of this package named in
  :data:`EXTRA_NODE_MODULES` (e.g. ``"amed"`` for ``nodes/amed.py``) defines
  ``NODE_CLASS_MAPPINGS`` and, optionally, ``NODE_DISPLAY_NAME_MAPPINGS``. It is imported
  before the generated nodes are built, so a sampler node it extends
  (:func:`.definitions.extend_sampler_node`) is built with the extension; its own nodes
  are added after the generated ones, and one named like a generated node is refused
  (logged). If the module has a ``comfyui_setup()`` function, :func:`setup_comfyui` calls
  it once ComfyUI loads the pack (e.g. to register a model folder). A module that fails to
  import, or whose setup fails, is logged and skipped; the other nodes still load.
* All ``comfy`` imports live in this package, and only :mod:`.registration` and the
  nodes' run methods need them; :func:`node_definitions` works without ComfyUI as long
  as the extra modules import ``comfy`` lazily too.
"""

from __future__ import annotations

import importlib
import logging
from typing import Dict, Tuple

__all__ = ["setup_comfyui", "node_definitions", "EXTRA_NODE_MODULES"]

log = logging.getLogger("seeds_samplers")

# Modules of this package with hand-written nodes or extensions of generated ones.
EXTRA_NODE_MODULES: Tuple[str, ...] = ("amed", "digits")


def _extra_nodes(modules: Tuple[str, ...], setup: bool = False) -> Tuple[Dict[str, type], Dict[str, str]]:
    classes: Dict[str, type] = {}
    names: Dict[str, str] = {}
    for name in modules:
        try:
            mod = importlib.import_module(f".{name}", __name__)
            mod_classes = dict(getattr(mod, "NODE_CLASS_MAPPINGS"))
            mod_names = dict(getattr(mod, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {})
            hook = getattr(mod, "comfyui_setup", None)
            if setup and callable(hook):
                hook()
        except Exception:  # noqa: BLE001 - one broken module must not take the other nodes down
            log.exception("SEEDS Samplers: node module %r failed to load; its nodes are missing", name)
            continue
        classes.update(mod_classes)
        names.update({k: v for k, v in mod_names.items() if k in mod_classes})
    return classes, names


def node_definitions(_setup: bool = False) -> Tuple[Dict[str, type], Dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` without touching ComfyUI."""
    from .definitions import build_node_classes

    extra_classes, extra_names = _extra_nodes(EXTRA_NODE_MODULES, setup=_setup)  # extensions first
    classes, names = build_node_classes()
    for node_id, cls in extra_classes.items():
        if node_id in classes:
            log.error("SEEDS Samplers: a hand-written node may not replace the generated %r (extend it with "
                      "definitions.extend_sampler_node); kept the generated one", node_id)
            continue
        classes[node_id] = cls
        if node_id in extra_names:
            names[node_id] = extra_names[node_id]
    return classes, names


def setup_comfyui() -> Tuple[Dict[str, type], Dict[str, str]]:
    """Register the menu entries and return the node mappings.

    Node classes are built first, so a failure leaves ComfyUI's lists untouched;
    registering again (the pack imported twice) adds nothing.
    """
    classes, names = node_definitions(_setup=True)
    from .registration import register_all

    summary = register_all()
    if summary["samplers"] or summary["schedulers"]:
        log.info("SEEDS Samplers: added samplers %s and schedulers %s to the dropdowns; %d nodes",
                 summary["samplers"], summary["schedulers"], len(classes))
    elif not summary["skipped"]:
        log.info("SEEDS Samplers: menu entries already registered by an earlier import; %d nodes", len(classes))
    if summary["skipped"]:
        log.warning("SEEDS Samplers: names already taken by another pack, left alone: %s", summary["skipped"])
    return classes, names
