"""The example workflows (workflows/*.json) against the node definitions.

Always runs (no ComfyUI needed): our nodes come from the registry, ComfyUI's core ones
from support.comfy_nodes.CORE_NODES (v0.3.64). Each workflow is converted to an API prompt the
way the frontend does (widget order from INPUT_TYPES, a control_after_generate slot after
seed widgets), so unknown node types, unknown inputs, wrong link types and values outside
the declared ranges all fail here. tests/test_comfyui_integration.py runs them for real.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from support import REPO
from support import workflow_builder as B
from support.comfy_nodes import offline_definitions
from support.comfy_workflows import (WORKFLOW_DIR, WorkflowError, load_workflows, missing_samplers, ui_to_api,
                                     widget_names)

WORKFLOWS = load_workflows()


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
    assert any_wf(lambda n: "ModelSamplingSD3" in types[n] and (any(t.startswith("SS_Sampler_seeds") for t in types[n])
                                                                or any(str(v).startswith("ss_seeds") for v in values[n])))
    # DEIS at a low step count
    assert any_wf(lambda n: "ss_deis" in values[n] or "SS_Sampler_deis" in types[n])
    # the shipped digits model, nothing to download
    assert any_wf(lambda n: "SS_DigitsLoader" in types[n] and "CheckpointLoaderSimple" not in types[n])
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
    thumb = os.path.join(WORKFLOW_DIR, name + ".jpg")
    assert os.path.isfile(thumb), f"missing thumbnail {thumb}"
    with open(thumb, "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff", "thumbnail is not a JPEG"
    assert os.path.getsize(thumb) < 300_000
    # a note that names every checkpoint or digits model the graph loads
    notes = " ".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote"))
    models = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("CheckpointLoaderSimple", "SS_DigitsLoader")]
    assert models
    for c in models:
        assert c in notes, f"the note does not name the model {c}"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_nodes_inputs_and_values_exist(name):
    wf = WORKFLOWS[name]
    missing = missing_samplers(wf)
    if missing:
        pytest.skip(f"uses samplers that are not in the registry yet: {missing}")
    prompt = ui_to_api(wf, offline_definitions())
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
    defs = offline_definitions()
    ks = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    ks["widgets_values"][4] = "ss_no_such_sampler"
    with pytest.raises(WorkflowError, match="not one of the options"):
        ui_to_api(wf, defs)
    ks["widgets_values"][4] = "ss_seeds_2"
    ks["widgets_values"][2] = 0  # steps below the minimum
    with pytest.raises(WorkflowError, match="outside"):
        ui_to_api(wf, defs)
    ks["widgets_values"][2] = 10
    ks["type"] = "KSamplerNoSuchNode"
    with pytest.raises(WorkflowError, match="unknown node type"):
        ui_to_api(wf, defs)


def _notes(wf):
    return [n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote")]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_notes_name_the_nodes_by_their_titles(name):
    """Every "... (SS)" name in a note is the display name of one of the pack's nodes (the
    names ComfyUI shows come from the same mapping), and each of the pack's nodes in the
    graph is named in the note."""
    from seeds_samplers.nodes import node_definitions

    titles = node_definitions()[1]
    wf = WORKFLOWS[name]
    text = " ".join(_notes(wf))
    used = {n["type"] for n in wf["nodes"] if n["type"] in titles}
    for node_type in used:
        assert titles[node_type] in text, f"the note does not name {titles[node_type]!r}"
    mentions = text.count("(SS)")
    named = sum(text.count(t) for t in set(titles.values()))
    assert mentions == named, f"{mentions - named} '(SS)' names in the note are no node's title: {text}"


def test_the_title_check_catches_a_drifted_name():
    from seeds_samplers.nodes import node_definitions

    titles = set(node_definitions()[1].values())
    assert "ER-SDE Sampler (SS)" not in titles and "logSNR Uniform Schedule (SS)" not in titles


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_note_starts_with_the_checkpoint_file_and_where_it_goes(name):
    wf = WORKFLOWS[name]
    ckpts = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "CheckpointLoaderSimple"]
    first_lines = [t.splitlines()[0] for t in _notes(wf)]
    if not ckpts:  # the digits template: says nothing needs downloading
        assert any(n["type"] == "SS_DigitsLoader" for n in wf["nodes"]) and B.DIGITS_LINE in first_lines
    for c in ckpts:
        assert any(line.startswith("NEEDS " + c) and "models/checkpoints/" in line for line in first_lines), c
    with open(os.path.join(REPO, "docs", "comfyui.md"), encoding="utf-8") as f:
        page = f.read()
    for c in ckpts:
        assert c in page, f"docs/comfyui.md does not list {c}"
        assert B.CHECKPOINTS[c][1] in page


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_fits_a_1600x1000_window_at_a_readable_zoom(name):
    """ComfyUI stops drawing node text below a zoom of 8 px / 14 px = 0.57; each graph
    must fit the canvas of a 1600 x 1000 window at 0.7 or more, and opens fitted."""
    wf = WORKFLOWS[name]
    view = B.fit_view(wf["nodes"])
    assert view["scale"] >= 0.7, view
    assert wf["extra"]["ds"] == view


def test_sampler_node_in_a_workflow_runs_its_menu_entry_settings_unless_changed():
    """Workflow 3's SEEDS-2 node: only eta differs from ss_seeds_2 (variant agrees)."""
    from seeds_samplers.nodes import node_definitions

    classes = node_definitions()[0]
    for wf in WORKFLOWS.values():
        for n in wf["nodes"]:
            if not n["type"].startswith("SS_Sampler_") or getattr(classes[n["type"]], "DEPRECATED", False):
                continue
            req = classes[n["type"]].INPUT_TYPES()["required"]
            values = dict(zip(req, n["widgets_values"]))
            changed = {k for k, v in values.items() if v != req[k][1]["default"]}
            assert changed <= {"eta"}, (n["type"], changed)


def test_docs_generated_tables_are_current():
    """docs/comfyui.md's node, entry and checkpoint tables equal what the builder makes
    from the registry and the workflows (rewrite: python -m tests.support.workflow_builder)."""
    with open(B.DOCS_PAGE, encoding="utf-8") as f:
        page = f.read()
    for key, block in B.generated_blocks().items():
        m = re.search(rf"<!-- {key}:start -->\n(.*?)<!-- {key}:end -->", page, re.S)
        assert m and m.group(1) == block, (
            f"docs/comfyui.md: the {key} table is stale; run python -m tests.support.workflow_builder")


def test_workflow_file_names_are_safe_for_the_template_browser():
    for name in WORKFLOWS:
        assert re.fullmatch(r"[A-Za-z0-9 .()+,_-]+", name), name


def test_every_workflow_file_has_its_builder_and_note_writer():
    assert set(WORKFLOWS) == set(B.WORKFLOWS)


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_notes_are_written_from_the_widget_values_they_describe(name):
    """The note in the file is what its writer makes of the file's own widget values: a
    widget changed without rewriting the note (python -m tests.support.workflow_builder)
    fails here."""
    wf = WORKFLOWS[name]
    assert _notes(wf) == [B.write_note(name, wf, offline_definitions())]


def _set_widget(wf, node_type, widget, value):
    defs = offline_definitions()
    (node,) = [n for n in wf["nodes"] if n["type"] == node_type]
    names = widget_names(defs[node_type])
    node["widgets_values"][names.index(widget)] = value


@pytest.mark.parametrize("name, node_type, widget, value, says", [
    ("2 SDXL - SamplerCustom with ER-SDE and a logSNR schedule", "SS_Sampler_er_sde", "noise_scale_function", "sde_5",
     "noise-scale function sde_5 (phi(s) = s(e^{s^0.3}+10); the paper's default)"),
    ("2 SDXL - SamplerCustom with ER-SDE and a logSNR schedule", "SS_Sampler_er_sde", "order", 3, "order 3,"),
    ("2 SDXL - SamplerCustom with ER-SDE and a logSNR schedule", "SS_Sampler_er_sde", "expansion", "sigma",
     "expansion sigma (the paper's),"),
    ("1 SD1.5 txt2img - SEEDS-2 in the KSampler dropdown", "KSampler", "steps", 20,
     "20 steps cost about as much as 40 Euler steps"),
    ("4 DEIS at 8 steps", "SS_Sigmas_deis_quadratic", "kappa", 1.5, "(kappa 1.5)"),
    ("6 AMED train and sample", "SS_Sigmas_logsnr_uniform", "steps", 6,
     "6 steps = 5 AMED steps with the analytical first step + the final denoise = 10 model calls"),
    ("6 AMED train and sample", "SS_AMED_Train", "loss", "final", "256 trajectories with loss final,"),
])
def test_a_changed_widget_changes_its_note(name, node_type, widget, value, says):
    """The writers read the values: a changed widget is described as changed, and the file's
    old note no longer passes the check above."""
    wf = json.loads(json.dumps(WORKFLOWS[name]))
    _set_widget(wf, node_type, widget, value)
    note = B.write_note(name, wf, offline_definitions())
    assert says in note
    assert note != _notes(WORKFLOWS[name])[0]
