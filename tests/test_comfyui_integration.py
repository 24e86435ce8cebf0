"""The pack in a real ComfyUI: a headless ``main.py --cpu`` server on 127.0.0.1 with a
random-weight SD1.5 checkpoint built by ComfyUI's own model classes.

Opt-in: set COMFYUI_ROOT to a ComfyUI checkout and run with a Python that has ComfyUI's
requirements (see the README's ComfyUI section), e.g.

    COMFYUI_ROOT=/work/comfyui /work/venv-comfy/bin/python -m pytest tests/test_comfyui_integration.py

The server loads, in this order: a pack that snapshots SAMPLER_NAMES at its import and a
broken copy of this pack (custom_nodes dir 0), this pack (dir 1), a second copy of this
pack (dir 2), and probe nodes (dir 3). The random checkpoint is cached in
$SS_TEST_CACHE or ~/.cache/seeds_samplers_tests (about 470 MB, never in the repository).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time

import pytest

from seeds_samplers.nodes.definitions import families
from seeds_samplers.samplers.cfg_pp import cfg_pp_forms, menu_entries
from seeds_samplers.samplers.registry import SAMPLERS, menu_variants
from seeds_samplers.samplers.schedules import SCHEDULES
from support import REPO, asset_cache
from support.comfy_checkpoint import CHECKPOINT as CKPT, ensure_checkpoint
from support.comfy_nodes import CORE_SAMPLERS, CORE_SCHEDULERS, server_definitions
from support.comfy_server import ComfyServer, checkout_files
from support.comfy_test_packs import PROBE_PACK, SNAPSHOT_PACK
from support.comfy_workflows import load_workflows, missing_samplers, ui_to_api

pytestmark = pytest.mark.usefixtures("comfyui_root")  # skips without a ComfyUI checkout

SAMPLER_NAMES = [s.host_name for s in SAMPLERS.values()]
CFG_PP_NAMES = [s.host_name for s in cfg_pp_forms()]  # after ours in the menu (samplers/cfg_pp.py)
SCHEDULER_NAMES = [s.host_name for s in SCHEDULES.values()]
VARIANTS = {v.id: (base, v) for base in SAMPLERS.values() for v in menu_variants(base)}  # further menu entries


# --- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def server(tmp_path_factory, comfyui_python):
    cache = asset_cache()
    ensure_checkpoint(comfyui_python, cache)
    work = str(tmp_path_factory.mktemp("comfy"))
    dirs = [os.path.join(work, f"custom_nodes_{i}") for i in range(4)]
    for d in dirs:
        os.makedirs(d)
    # dir 0: a list-snapshotting pack and a copy of this pack whose node setup fails
    with open(os.path.join(dirs[0], "ss_test_snapshot.py"), "w") as f:
        f.write(SNAPSHOT_PACK)
    broken = os.path.join(dirs[0], "seeds_samplers_broken")
    shutil.copytree(REPO, broken, ignore=shutil.ignore_patterns(".git", "tests", "workflows", "docs",
                                                                "bench", "__pycache__", "*.egg-info"))
    with open(os.path.join(broken, "nodes", "__init__.py"), "w") as f:
        f.write('raise RuntimeError("simulated failure in the node setup")\n')
    # dir 1: this pack; dir 2: the same pack again under another folder name
    os.symlink(REPO, os.path.join(dirs[1], "seeds_samplers"))
    os.symlink(REPO, os.path.join(dirs[2], "seeds_samplers_again"))
    with open(os.path.join(dirs[3], "ss_test_probes.py"), "w") as f:
        f.write(PROBE_PACK % {"pack_module": os.path.join(dirs[1], "seeds_samplers").replace(".", "_x_")})
    srv = ComfyServer(comfyui_python, work, cache, dirs, extra_args=["--preview-method", "latent2rgb"])
    srv.checkout_before = checkout_files(comfyui_python)  # the user's install, which the tests must not write to
    srv.start()
    srv.reports = os.path.join(work, "reports")
    srv.workflows_run = []
    os.makedirs(srv.reports)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def object_info(server):
    return server.get("/object_info")


@pytest.fixture(scope="session")
def defs(object_info):
    return server_definitions(object_info)


# --- prompt builders -------------------------------------------------------------------
def base_prompt(sampler="ss_seeds_2", scheduler="karras", steps=4, flow=False, seed=7, cfg=5.0, size=64):
    p = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "a red fox"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "blurry"}},
        "ks": {"class_type": "KSampler", "inputs": {
            "model": ["flow", 0] if flow else ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0],
            "latent_image": ["latent", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler,
            "scheduler": scheduler, "denoise": 1.0}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}},
        "check": {"class_type": "SSTestImageCheck", "inputs": {"images": ["dec", 0], "label": sampler}},
    }
    if flow:
        p["flow"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": ["ckpt", 0], "shift": 3.0}}
    return p


def custom_prompt(sampler_node, sigmas_node, flow=False, seed=7, cfg=5.0):
    """SamplerCustom with the given SAMPLER and SIGMAS node dicts (model input filled in)."""
    p = base_prompt(flow=flow, seed=seed, cfg=cfg)
    model = ["flow", 0] if flow else ["ckpt", 0]
    del p["ks"]
    p["sampler"] = sampler_node
    sigmas_node = copy.deepcopy(sigmas_node)
    if "model" in sigmas_node["inputs"]:
        sigmas_node["inputs"]["model"] = model
    p["sigmas"] = sigmas_node
    p["sc"] = {"class_type": "SamplerCustom", "inputs": {
        "model": model, "add_noise": True, "noise_seed": seed, "cfg": cfg, "positive": ["pos", 0],
        "negative": ["neg", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0], "latent_image": ["latent", 0]}}
    p["dec"]["inputs"]["samples"] = ["sc", 0]
    return p


def checks(entry):
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    out = [c for node in entry["outputs"].values() for c in node.get("ss_check", [])]
    assert out, "no image check ran"
    for c in out:
        assert c["finite"] and c["shape"][-1] == 3
    return out


def read_report(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- registration ----------------------------------------------------------------------
def test_dropdowns_list_our_names(object_info):
    for node in ("KSampler", "KSamplerAdvanced"):
        req = object_info[node]["input"]["required"]
        samplers, schedulers = req["sampler_name"][0], req["scheduler"][0]
        for name in SAMPLER_NAMES:
            assert samplers.count(name) == 1, (node, name)
        for name in SCHEDULER_NAMES:
            assert schedulers.count(name) == 1, (node, name)
    select = object_info["KSamplerSelect"]["input"]["required"]["sampler_name"][0]
    basic = object_info["BasicScheduler"]["input"]["required"]["scheduler"][0]
    # each sampler followed by its menu variants, then the CFG++ forms (samplers/cfg_pp.py)
    assert [n for n in select if n.startswith("ss_")] == [s.host_name for s in menu_entries()]
    assert set(SAMPLER_NAMES + CFG_PP_NAMES + [v.host_name for _, v in VARIANTS.values()]) == \
        {s.host_name for s in menu_entries()}
    assert [n for n in basic if n.startswith("ss_")] == SCHEDULER_NAMES
    # the built-ins are all still there, in their order, in front of ours
    assert select[: len(CORE_SAMPLERS)] == CORE_SAMPLERS
    assert basic[: len(CORE_SCHEDULERS)] == CORE_SCHEDULERS


def test_our_nodes_are_registered(object_info):
    from seeds_samplers.nodes import node_definitions

    classes, names = node_definitions()
    assert {f"SS_Sampler_{s}" for s in SAMPLERS} | {f"SS_Sigmas_{s}" for s in SCHEDULES} <= set(classes)
    assert {k for k in object_info if k.startswith("SS_")} == set(classes)
    for node_id, cls in classes.items():
        info = object_info[node_id]
        assert info["display_name"] == names[node_id]
        assert bool(info.get("deprecated")) == bool(getattr(cls, "DEPRECATED", False))
        assert info["output"] == list(cls.RETURN_TYPES)
        ours = cls.INPUT_TYPES()["required"]
        theirs = info["input"]["required"]
        assert list(theirs) == list(ours)
        for name, spec in ours.items():
            if name == "predictor_name":  # the files in the server's models/amed: its own listing
                assert isinstance(theirs[name][0], list)
                # with no file yet, the tooltip names the server's own folder (where files go)
                tooltip = theirs[name][1].get("tooltip")
                if not theirs[name][0]:
                    assert os.path.join("models", "amed") in tooltip, tooltip
                    continue
            else:
                assert theirs[name][0] == spec[0]
            assert theirs[name][1].get("tooltip") == spec[1]["tooltip"]


def test_loaded_twice_registers_nothing_twice(server, object_info):
    log = server.log()
    assert "already registered by an earlier import" in log  # the second copy added nothing
    assert "already taken by another pack" not in log
    select = object_info["KSamplerSelect"]["input"]["required"]["sampler_name"][0]
    basic = object_info["BasicScheduler"]["input"]["required"]["scheduler"][0]
    assert len(select) == len(set(select)) and len(basic) == len(set(basic))


def test_failure_in_a_copy_is_logged_once_and_contained(server, object_info):
    log = server.log()
    assert log.count("SEEDS Samplers: ComfyUI integration failed to load") == 1
    assert "simulated failure in the node setup" in log
    assert "KSampler" in object_info and "SSTestProbeSampler" in object_info  # other nodes unaffected


def test_pack_that_snapshots_the_lists_still_validates(server):
    p = base_prompt()
    p["snap"] = {"class_type": "SSTestSamplerSnapshot",
                 "inputs": {"sampler_name": "ss_seeds_2", "scheduler": "ss_logsnr_uniform"}}
    p["ks"]["inputs"]["sampler_name"] = ["snap", 0]
    p["ks"]["inputs"]["scheduler"] = ["snap", 1]
    status, body = server.queue(p)
    assert status == 200, json.dumps(body)[:3000]
    checks(server.wait(body["prompt_id"]))
    assert "which were taken before this pack loaded" in server.log()


# --- example workflows -----------------------------------------------------------------
def _workflow_ids():
    return sorted(load_workflows())


@pytest.mark.parametrize("name", _workflow_ids())
def test_example_workflow_executes(server, defs, name):
    wf = load_workflows()[name]
    missing = missing_samplers(wf)
    if missing:
        pytest.skip(f"needs samplers not in the registry yet: {missing}")
    overrides = {("CheckpointLoaderSimple", "ckpt_name"): CKPT}
    for t in ("EmptyLatentImage", "EmptySD3LatentImage"):
        overrides[(t, "width")] = overrides[(t, "height")] = 64
    for t in ["KSampler", "BasicScheduler"] + [n for n in defs if n.startswith("SS_Sigmas_")]:
        overrides[(t, "steps")] = 4
    # AMED training: the smallest run that still trains (CPU; the workflow's values are for a GPU)
    overrides.update({("SS_AMED_Train", "trajectories"): 8, ("SS_AMED_Train", "batch"): 8,
                      ("SS_AMED_Train", "teacher_substeps"): 1})
    prompt = ui_to_api(wf, defs, overrides)
    for nid, node in list(prompt.items()):
        if node["class_type"] in ("VAEDecode", "SS_DigitsDecode"):
            prompt[f"check_{nid}"] = {"class_type": "SSTestImageCheck", "inputs": {"images": [nid, 0], "label": nid}}
    entry = server.run(prompt)
    checks(entry)
    saved = [img for node in entry["outputs"].values() for img in node.get("images", [])]
    assert saved, "the workflow saved no image"
    server.workflows_run.append(name)


def test_runs_write_only_into_the_servers_temporary_folders(server, comfyui_python):
    """AMED training saved its predictor in the server's own models/amed (a temporary folder);
    the checkout (a user's install, maybe) gained, lost and changed no file."""
    assert checkout_files(comfyui_python) == server.checkout_before
    trained = [n for n in server.workflows_run if "SS_AMED_Train" in {x["type"] for x in load_workflows()[n]["nodes"]}]
    if trained:
        saved = os.listdir(os.path.join(server.base_dir, "models", "amed"))
        assert any(f.endswith(".safetensors") for f in saved), saved


# --- every sampler, every node, every schedule -----------------------------------------
@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_runs_in_ksampler(server, name, flow):
    checks(server.run(base_prompt(sampler=name, flow=flow)))


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
@pytest.mark.parametrize("name", CFG_PP_NAMES)
def test_every_cfg_pp_entry_runs_in_ksampler(server, name, flow):
    checks(server.run(base_prompt(sampler=name, flow=flow, cfg=0.7)))


@pytest.mark.parametrize("cfg", [0.6, 1.0])
def test_first_order_cfg_pp_node_is_comfyuis_euler_cfg_pp(server, object_info, cfg):
    """iPNDM of order 1 with cfg_pp on is CFG++'s DDIM step, which is ComfyUI's own
    euler_cfg_pp on an eps model: the same image up to float32 round-off. At CFG 1 too
    (the unconditional pass must run although ComfyUI skips it at 1 unless told not to);
    with cfg_pp off the image differs by far more than that round-off."""
    node = {"class_type": "SS_Sampler_ipndm",
            "inputs": {**_node_defaults(object_info, "SS_Sampler_ipndm"), "order": 1, "cfg_pp": True}}
    theirs = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_cfg_pp"}}
    a = checks(server.run(custom_prompt(node, KARRAS4, cfg=cfg)))[0]
    b = checks(server.run(custom_prompt(theirs, KARRAS4, cfg=cfg)))[0]
    assert abs(a["sum"] - b["sum"]) <= 1e-4 * abs(b["sum"]) and abs(a["std"] - b["std"]) <= 1e-4 * b["std"], (a, b)
    node["inputs"]["cfg_pp"] = False
    c = checks(server.run(custom_prompt(node, KARRAS4, cfg=cfg)))[0]
    # (the random-weight model's cond and uncond differ little: compare with the round-off above)
    assert abs(c["sum"] - b["sum"]) > 10 * abs(a["sum"] - b["sum"]), (a, b, c)


def _node_defaults(object_info, node_id):
    return {k: v[1]["default"] for k, v in object_info[node_id]["input"]["required"].items()}


KARRAS4 = {"class_type": "BasicScheduler", "inputs": {"model": None, "scheduler": "karras", "steps": 4, "denoise": 1.0}}


@pytest.mark.parametrize("sampler_id", list(SAMPLERS))
def test_a_new_sampler_node_gives_the_menu_entrys_image(server, object_info, sampler_id):
    """A node at its defaults (as the page creates it) and the ss_<id> entry in
    KSamplerSelect: same seed and sigmas, the same image to the last bit."""
    node = {"class_type": f"SS_Sampler_{sampler_id}", "inputs": _node_defaults(object_info, f"SS_Sampler_{sampler_id}")}
    entry = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": SAMPLERS[sampler_id].host_name}}
    a = checks(server.run(custom_prompt(node, KARRAS4)))[0]
    b = checks(server.run(custom_prompt(entry, KARRAS4)))[0]
    assert a["sum"] == b["sum"] and a["std"] == b["std"]


@pytest.mark.parametrize("variant_id", list(VARIANTS))
def test_a_menu_variant_is_its_samplers_node_at_the_variants_settings(server, object_info, variant_id):
    """ss_<variant> in KSamplerSelect and the sampler's node with the variant's settings
    typed in: the same image to the last bit."""
    base, variant = VARIANTS[variant_id]
    inputs = _node_defaults(object_info, f"SS_Sampler_{base.id}")
    assert set(variant.menu) <= set(inputs)
    inputs.update(variant.menu)
    node = {"class_type": f"SS_Sampler_{base.id}", "inputs": inputs}
    entry = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": variant.host_name}}
    a = checks(server.run(custom_prompt(node, KARRAS4)))[0]
    b = checks(server.run(custom_prompt(entry, KARRAS4)))[0]
    assert a["sum"] == b["sum"] and a["std"] == b["std"]


@pytest.mark.parametrize("solver", [s.id for s in families()["seeds"]])
def test_deprecated_seeds_node_still_runs_every_solver(server, object_info, solver):
    inputs = _node_defaults(object_info, "SS_Sampler_seeds")
    inputs["solver"] = solver
    assert object_info["SS_Sampler_seeds"].get("deprecated") is True
    checks(server.run(custom_prompt({"class_type": "SS_Sampler_seeds", "inputs": inputs}, KARRAS4)))


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_schedules_as_nodes_and_in_the_dropdown(server, object_info, schedule):
    node_id = f"SS_Sigmas_{schedule}"
    inputs = {k: v[1]["default"] for k, v in object_info[node_id]["input"]["required"].items() if k != "model"}
    inputs.update(model=None, steps=4)
    sampler = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "ss_er_sde"}}
    checks(server.run(custom_prompt(sampler, {"class_type": node_id, "inputs": inputs})))
    checks(server.run(base_prompt(sampler="ss_seeds_1", scheduler=SCHEDULES[schedule].host_name, flow=True)))


def test_partial_denoise_with_our_scheduler(server):
    p = base_prompt(sampler="ss_seeds_2", scheduler="ss_logsnr_uniform", steps=3)
    p["ks"]["inputs"]["denoise"] = 0.5
    checks(server.run(p))


# --- host behaviour --------------------------------------------------------------------
def _probe_prompt(server, tag, flow=False, mask=None, seed=11, steps=4, sampler="ss_seeds_2"):
    report = os.path.join(server.reports, f"probe_{tag}.jsonl")
    p = custom_prompt({"class_type": "SSTestProbeSampler", "inputs": {"sampler_name": sampler, "report": report}},
                      {"class_type": "BasicScheduler", "inputs": {"model": None, "scheduler": "karras",
                                                                  "steps": steps, "denoise": 1.0}},
                      flow=flow, seed=seed)
    if mask is not None:
        p["mask"] = {"class_type": "SolidMask", "inputs": {"value": mask, "width": 64, "height": 64}}
        p["masked"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["latent", 0], "mask": ["mask", 0]}}
        p["sc"]["inputs"]["latent_image"] = ["masked", 0]
    return p, report


def test_host_passes_seed_callbacks_and_model_type(server):
    p, report = _probe_prompt(server, "eps", seed=4242, steps=5)
    checks(server.run(p))
    rec = read_report(report)[-1]
    spec = SAMPLERS["seeds_2"]
    assert rec["seed"] == 4242 and set(rec["seeds"]) == {4242}
    assert {"denoise_mask", "model_options", "seed"} <= set(rec["keys"])
    assert [c["i"] for c in rec["callbacks"]] == list(range(5))
    assert rec["callbacks"][0]["keys"] == ["denoised", "i", "sigma", "sigma_hat", "x"]
    assert rec["calls"] == spec.calls(**dict(spec.menu)) * 4 + 1  # last step to sigma = 0: one call
    assert rec["kind"] == "ve" and "CONST" not in rec["ms_classes"]
    assert rec["sigma_min"] == pytest.approx(rec["ms_sigma_min"]) and rec["sigma_max"] == pytest.approx(rec["ms_sigma_max"])
    assert rec["noise_scale"] == rec["ms_noise_scale"]
    assert rec["finite"]
    assert spec.is_stochastic(**dict(spec.menu))
    assert rec["same_seed_same_result"] and rec["other_seed_differs"]


def test_flow_model_read_through_the_model_patcher(server):
    p, report = _probe_prompt(server, "flow", flow=True)
    checks(server.run(p))
    rec = read_report(report)[-1]
    assert "CONST" in rec["ms_classes"] and rec["kind"] == "flow"
    assert rec["sigmas"][0] == pytest.approx(1.0)
    assert rec["flow_first_sigma"] == pytest.approx(rec["ms_percent_1e4"]) and rec["flow_first_sigma"] < 1.0
    assert rec["finite"]


def test_inpainting_mask_passes_through_untouched(server):
    p, report = _probe_prompt(server, "mask", mask=1.0)
    checks(server.run(p))
    rec = read_report(report)[-1]
    assert rec["has_mask"] and all(rec["same_mask"]) and rec["calls"] > 0
    # mask 0 everywhere: nothing may change, the result is the input latent exactly
    keep, _ = _probe_prompt(server, "keep", mask=0.0)
    kept = checks(server.run(keep))[0]
    plain = base_prompt()
    plain["dec"]["inputs"]["samples"] = ["latent", 0]
    del plain["ks"]
    ref = checks(server.run(plain))[0]
    assert kept["sum"] == pytest.approx(ref["sum"], rel=0, abs=1e-6)


def test_progress_and_previews_every_step(server):
    aiohttp = pytest.importorskip("aiohttp")
    import asyncio

    steps = 5
    p = base_prompt(sampler="ss_er_sde", steps=steps, seed=99)

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/ws?clientId=ss-ws") as ws:
                async with session.post(f"{server.url}/prompt", json={"prompt": p, "client_id": "ss-ws"}) as r:
                    assert r.status == 200, await r.text()
                    pid = (await r.json())["prompt_id"]
                progress, previews = [], 0
                deadline = time.time() + 120
                while time.time() < deadline:
                    msg = await ws.receive(timeout=120)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        previews += 1
                        continue
                    data = json.loads(msg.data)
                    d = data.get("data", {})
                    if data["type"] == "progress" and d.get("prompt_id") == pid and d.get("node") == "ks":
                        progress.append(d["value"])
                    if data["type"] == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                        return progress, previews
                raise TimeoutError

    progress, previews = asyncio.run(run())
    assert progress == list(range(1, steps + 1))
    assert previews >= steps


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_interrupt_during_a_step_stops_by_the_next_step(server, name):
    """An interrupt raised inside model call N (step k) stops the run before step k + 2."""
    spec = next(s for s in SAMPLERS.values() if s.host_name == name)
    per_step = spec.calls(**dict(spec.menu))
    report = os.path.join(server.reports, f"interrupt_{name}.jsonl")
    # interrupt at the last model call of step 2 (worst case for multi-stage solvers)
    at = 3 * per_step
    p = base_prompt(sampler=name, steps=12, cfg=1.0)
    p["calls"] = {"class_type": "SSTestModelCalls", "inputs": {"model": ["ckpt", 0], "report": report,
                                                               "interrupt_at": at, "sleep": 0.0}}
    p["ks"]["inputs"]["model"] = ["calls", 0]
    entry = server.run(p)
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    calls = len(read_report(report))
    assert at <= calls <= at + 1  # step 3's first call, then its callback raises


def test_cancel_button_stops_a_long_run_within_one_step(server):
    report = os.path.join(server.reports, "cancel.jsonl")
    sleep = 0.25
    p = base_prompt(sampler="ss_seeds_3", steps=200, cfg=1.0)
    p["calls"] = {"class_type": "SSTestModelCalls", "inputs": {"model": ["ckpt", 0], "report": report,
                                                               "interrupt_at": 0, "sleep": sleep}}
    p["ks"]["inputs"]["model"] = ["calls", 0]
    status, body = server.queue(p)
    assert status == 200
    deadline = time.time() + 120
    while time.time() < deadline and (not os.path.exists(report) or len(read_report(report)) < 7):
        time.sleep(0.05)
    t_cancel = time.time()
    server.post("/interrupt", {})
    entry = server.wait(body["prompt_id"], timeout=120)
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    after = [r for r in read_report(report) if r["t"] > t_cancel]
    per_step = SAMPLERS["seeds_3"].calls(**dict(SAMPLERS["seeds_3"].menu))
    assert len(after) <= per_step  # at most the rest of this step and the next step's first call
    assert len(read_report(report)) < 40


def test_frontend_converts_the_workflows_as_the_tests_do(server, defs):
    """ComfyUI's own page (headless Chromium) turns each example workflow into the same API
    prompt as support.comfy_workflows.ui_to_api, so the tests run what a user's click would queue."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.skip(f"needs Chromium at {chromium} (Debian package chromium, or set CHROMIUM)")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-dev-shm-usage"]
    wfs = {name: wf for name, wf in load_workflows().items() if not missing_samplers(wf)}
    local = copy.deepcopy(defs)
    ckpt_options = local["CheckpointLoaderSimple"]["inputs"][0][1]
    for wf in wfs.values():  # the checkpoints the workflows name are not on the test server
        ckpt_options.extend(n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "CheckpointLoaderSimple")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url, wait_until="networkidle")
            page.wait_for_function("() => window.app && window.app.graph", timeout=120_000)
            for name, wf in wfs.items():
                out = page.evaluate(
                    "async (wf) => { await app.loadGraphData(wf); return (await app.graphToPrompt()).output; }", wf)
                theirs = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in out.items()}
                assert theirs == ui_to_api(wf, local), name
        finally:
            browser.close()
    templates = server.get("/workflow_templates")
    assert sorted(templates["seeds_samplers"]) == sorted(load_workflows())
