"""The example workflows (workflows/*.json, ComfyUI's UI format) for the tests: loading
them, converting one to the API prompt ComfyUI's frontend would queue (checking every node,
widget value and link against the node definitions of :mod:`support.comfy_nodes` or a live
server's), and listing the entries a workflow names that the registry lacks.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Optional, Tuple

from . import REPO

WORKFLOW_DIR = os.path.join(REPO, "workflows")
# Frontend-only nodes: shown in the graph, dropped from the API prompt.
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute"}


class WorkflowError(AssertionError):
    """A workflow ComfyUI would reject or misread (an AssertionError: a test failure)."""


def widget_names(definition: Dict[str, Any]) -> List[str]:
    """Names of widgets_values slots in order, with the frontend's extra
    ``control_after_generate`` slot after seed-like INT widgets."""
    names = []
    for name, typ, opts in definition["inputs"]:
        if typ in ("INT", "FLOAT", "STRING", "BOOLEAN") or isinstance(typ, list) or typ == "CHECKPOINT_FILE":
            names.append(name)
            if has_control_widget(name, typ, opts):
                names.append(f"{name}:control_after_generate")
    return names


def has_control_widget(name: str, typ: Any, opts: Dict[str, Any]) -> bool:
    """The frontend (1.27) adds a control_after_generate widget, and a widgets_values
    slot, to an INT that asks for one and to every INT named seed or noise_seed."""
    return typ == "INT" and bool(opts.get("control_after_generate") or name in ("seed", "noise_seed"))


def check_value(node_type: str, name: str, typ: Any, opts: Dict[str, Any], value: Any) -> None:
    where = f"{node_type}.{name}"
    if isinstance(typ, list):
        if value not in typ:
            raise WorkflowError(f"{where}: {value!r} is not one of the options")
    elif typ == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            raise WorkflowError(f"{where}: {value!r} is not an int")
        _check_range(where, value, opts)
    elif typ == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise WorkflowError(f"{where}: {value!r} is not a finite number")
        _check_range(where, value, opts)
    elif typ == "BOOLEAN":
        if not isinstance(value, bool):
            raise WorkflowError(f"{where}: {value!r} is not a boolean")
    elif typ in ("STRING", "CHECKPOINT_FILE"):
        if not isinstance(value, str):
            raise WorkflowError(f"{where}: {value!r} is not a string")


def _check_range(where: str, value: float, opts: Dict[str, Any]) -> None:
    lo, hi = opts.get("min"), opts.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise WorkflowError(f"{where}: {value!r} is outside [{lo}, {hi}]")


def ui_to_api(workflow: Dict[str, Any], definitions: Dict[str, Dict[str, Any]],
              overrides: Optional[Dict[Tuple[str, str], Any]] = None) -> Dict[str, Any]:
    """Convert a UI-format workflow (``nodes`` + ``links``) to an API prompt.

    Checks every node type and input against ``definitions``, every widget value
    against its type and range, and every link against the declared output type.
    ``overrides`` maps ``(node type, input name)`` to a replacement value (e.g. the test
    checkpoint's file name, smaller sizes and fewer steps).
    """
    overrides = overrides or {}
    links = {}
    for link in workflow.get("links", []):
        link_id, src, src_slot, dst, dst_slot, typ = link[:6]
        links[link_id] = (src, src_slot, dst, dst_slot, typ)
    nodes_by_id = {n["id"]: n for n in workflow["nodes"]}
    prompt: Dict[str, Any] = {}
    for node in workflow["nodes"]:
        ntype = node["type"]
        if ntype in VIRTUAL_NODES:
            continue
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        if ntype not in definitions:
            raise WorkflowError(f"node {node['id']}: unknown node type {ntype!r}")
        d = definitions[ntype]
        names = widget_names(d)
        values = list(node.get("widgets_values") or [])
        if len(values) != len(names):
            raise WorkflowError(f"node {node['id']} ({ntype}): {len(values)} widget values for widgets {names}")
        widget_values = dict(zip(names, values))
        linked = {}
        for inp in node.get("inputs", []) or []:
            if inp.get("link") is None:
                continue
            src, src_slot, dst, dst_slot, ltyp = links[inp["link"]]
            if dst != node["id"]:
                raise WorkflowError(f"link {inp['link']} does not end at node {node['id']}")
            src_node = nodes_by_id[src]
            src_def = definitions.get(src_node["type"])
            if src_def is None:
                raise WorkflowError(f"link from unknown node type {src_node['type']!r}")
            out_type = src_def["outputs"][src_slot]
            linked[inp["name"]] = ([str(src), src_slot], out_type)
        api_inputs: Dict[str, Any] = {}
        for name, typ, opts in d["inputs"]:
            if name in linked:
                ref, out_type = linked[name]
                want = "COMBO" if isinstance(typ, list) else typ
                got = "COMBO" if isinstance(out_type, list) else out_type
                if want != got and got != "*" and want != "*":
                    raise WorkflowError(f"node {node['id']} ({ntype}).{name}: linked {got} into {want}")
                api_inputs[name] = ref
            elif name in widget_values:
                value = overrides.get((ntype, name), widget_values[name])
                check_value(ntype, name, typ, opts, value)
                api_inputs[name] = value
            elif not opts.get("optional"):
                raise WorkflowError(f"node {node['id']} ({ntype}): required input {name!r} is not connected")
        for inp in node.get("inputs", []) or []:
            if inp.get("link") is not None and inp["name"] not in {n for n, _, _ in d["inputs"]}:
                raise WorkflowError(f"node {node['id']} ({ntype}): no input named {inp['name']!r}")
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": api_inputs}
    return prompt


def load_workflows() -> Dict[str, Dict[str, Any]]:
    """Every workflows/<name>.json by name, in name order."""
    out = {}
    for fn in sorted(os.listdir(WORKFLOW_DIR)):
        if fn.endswith(".json"):
            with open(os.path.join(WORKFLOW_DIR, fn), encoding="utf-8") as f:
                out[fn[:-5]] = json.load(f)
    return out


def missing_samplers(workflow: Dict[str, Any]) -> List[str]:
    """``ss_*`` names and ``SS_*`` node types a workflow uses that the registry lacks
    (samplers another change is still adding)."""
    from seeds_samplers.nodes import node_definitions
    from seeds_samplers.samplers.cfg_pp import menu_entries
    from seeds_samplers.samplers.schedules import SCHEDULES

    known = {s.host_name for s in menu_entries()} | {s.host_name for s in SCHEDULES.values()}
    node_types = set(node_definitions()[0])
    missing = []
    for node in workflow["nodes"]:
        if node["type"].startswith("SS_") and node["type"] not in node_types:
            missing.append(node["type"])
        if node["type"] not in ("KSampler", "KSamplerAdvanced", "KSamplerSelect", "BasicScheduler"):
            continue
        for v in node.get("widgets_values") or []:
            if isinstance(v, str) and v.startswith("ss_") and v not in known and " " not in v:
                missing.append(v)
    return sorted(set(missing))
