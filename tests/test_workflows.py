"""The example workflows (workflows/*.json) against the node definitions.

Always runs (no ComfyUI needed): our nodes come from the registry, ComfyUI's core ones
from comfy_harness.CORE_NODES (v0.3.64). Each workflow is converted to an API prompt the
way the frontend does (widget order from INPUT_TYPES, a control_after_generate slot after
seed widgets), so unknown node types, unknown inputs, wrong link types and values outside
the declared ranges all fail here. tests/test_comfyui_integration.py runs them for real.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import comfy_harness as H  # noqa: E402

WORKFLOWS = H.load_workflows()


def test_there_are_the_five_example_workflows():
    assert len(WORKFLOWS) >= 5
    types = {name: {n["type"] for n in wf["nodes"]} for name, wf in WORKFLOWS.items()}
    values = {name: [v for n in wf["nodes"] for v in n.get("widgets_values") or []] for name, wf in WORKFLOWS.items()}

    def any_wf(pred):
        return any(pred(name) for name in WORKFLOWS)

    # SD1.5 txt2img with one of our samplers picked in the stock KSampler
    assert any_wf(lambda n: "KSampler" in types[n] and any(str(v).startswith("ss_seeds") for v in values[n]))
    # SamplerCustom + ER-SDE node + one of our schedules
    assert any_wf(lambda n: {"SamplerCustom", "SS_Sampler_er_sde"} <= types[n]
                  and any(t.startswith("SS_Sigmas_") for t in types[n]))
    # a flow model with SEEDS
    assert any_wf(lambda n: "ModelSamplingSD3" in types[n] and ("SS_Sampler_seeds" in types[n]
                                                                or any(str(v).startswith("ss_seeds") for v in values[n])))
    # DEIS at a low step count
    assert any_wf(lambda n: "ss_deis" in values[n] or "SS_Sampler_deis" in types[n])
    # a comparison of several of our samplers at one seed
    def compared(n):
        ks = [x["widgets_values"] for x in WORKFLOWS[n]["nodes"] if x["type"] == "KSampler"]
        ours = {v[4] for v in ks if str(v[4]).startswith("ss_")}
        return len(ours) >= 3 and len({v[0] for v in ks}) == 1

    assert any_wf(compared)


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_is_ui_format_with_thumbnail_and_checkpoint_note(name):
    wf = WORKFLOWS[name]
    assert wf.get("version") == 0.4
    assert isinstance(wf["links"], list) and isinstance(wf["nodes"], list)
    ids = [n["id"] for n in wf["nodes"]]
    assert len(ids) == len(set(ids)) and wf["last_node_id"] >= max(ids)
    for n in wf["nodes"]:
        for key in ("id", "type", "pos", "size"):
            assert key in n, (n.get("id"), key)
    # a thumbnail for Browse Templates (the frontend asks for <name>.jpg)
    thumb = os.path.join(H.WORKFLOW_DIR, name + ".jpg")
    assert os.path.isfile(thumb), f"missing thumbnail {thumb}"
    with open(thumb, "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff", "thumbnail is not a JPEG"
    assert os.path.getsize(thumb) < 300_000
    # a note that names every checkpoint the graph loads
    notes = " ".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote"))
    ckpts = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "CheckpointLoaderSimple"]
    assert ckpts
    for c in ckpts:
        assert c in notes, f"the note does not name the checkpoint {c}"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_nodes_inputs_and_values_exist(name):
    wf = WORKFLOWS[name]
    missing = H.missing_samplers(wf)
    if missing:
        pytest.skip(f"uses samplers that are not in the registry yet: {missing}")
    prompt = H.ui_to_api(wf, H.offline_definitions())
    assert prompt
    # every link in the links array joins existing nodes and is referenced by both ends
    nodes = {n["id"]: n for n in wf["nodes"]}
    for lid, src, src_slot, dst, dst_slot, typ in (link[:6] for link in wf["links"]):
        assert lid in nodes[src]["outputs"][src_slot]["links"]
        assert nodes[dst]["inputs"][dst_slot]["link"] == lid
        assert nodes[src]["outputs"][src_slot]["type"] == typ
    # every output node is reached
    assert any(n["class_type"] == "SaveImage" for n in prompt.values())


def test_converter_rejects_bad_workflows():
    wf = json.loads(json.dumps(WORKFLOWS[sorted(WORKFLOWS)[0]]))
    defs = H.offline_definitions()
    ks = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    ks["widgets_values"][4] = "ss_no_such_sampler"
    with pytest.raises(H.WorkflowError, match="not one of the options"):
        H.ui_to_api(wf, defs)
    ks["widgets_values"][4] = "ss_seeds_2"
    ks["widgets_values"][2] = 0  # steps below the minimum
    with pytest.raises(H.WorkflowError, match="outside"):
        H.ui_to_api(wf, defs)
    ks["widgets_values"][2] = 10
    ks["type"] = "KSamplerNoSuchNode"
    with pytest.raises(H.WorkflowError, match="unknown node type"):
        H.ui_to_api(wf, defs)


def test_workflow_file_names_are_safe_for_the_template_browser():
    for name in WORKFLOWS:
        assert re.fullmatch(r"[A-Za-z0-9 .()+,_-]+", name), name
