"""CFG++ (``cfg_pp``) in real webuis, with the fixtures of tests/test_webui_hosts.py (opt-in:
A1111_ROOT etc., see there).

A1111 1.10's CFG denoiser keeps the unconditional prediction when asked (what its own
"DDIM CFG++" reads): the CFG++ menu entries are listed there and run; with ``cfg_pp`` on, iPNDM of order 1 is CFG++'s DDIM step and runs with it
(the infotext records the option, the image changes). A webui whose denoiser does not expose
it refuses ``cfg_pp`` with a message instead of running plain CFG (docs/algorithms.md, CFG++).
"""

from __future__ import annotations

import pytest

from support import webui_harness as H
from test_webui_hosts import LABELS, STEPS, webui  # noqa: F401  (the module-scoped host fixture)

from seeds_samplers.samplers.cfg_pp import cfg_pp_forms
from seeds_samplers.samplers.registry import SAMPLERS
from seeds_samplers.webui.naming import sampler_label, sampler_settings

EXPOSES_UNCOND = {"a1111"}  # checked in the hosts' CFG denoisers (docs/algorithms.md, CFG++)


def test_cfg_pp_runs_with_the_hosts_unconditional_prediction(webui):  # noqa: F811
    spec = SAMPLERS["ipndm"]
    keys = {s.param.name: s for s in sampler_settings(spec)}
    first_order = {keys["order"].key: 1}
    base = webui.txt2img(LABELS["ipndm"], seed=5, steps=STEPS, override_settings=dict(first_order))
    if webui.kind not in EXPOSES_UNCOND:
        with pytest.raises(Exception):
            webui.txt2img(LABELS["ipndm"], seed=5, steps=STEPS,
                          override_settings={**first_order, keys["cfg_pp"].key: True})
        return
    pp = webui.txt2img(LABELS["ipndm"], seed=5, steps=STEPS, cfg_scale=10.0,
                       override_settings={**first_order, keys["cfg_pp"].key: True})
    fields = H.infotext_fields(pp["info"]["infotexts"][0])
    assert fields[keys["cfg_pp"].infotext] == "True"
    _, a = H.pixels(base["images"][0])
    size, b = H.pixels(pp["images"][0])
    assert size == (64, 64) and len(set(b)) > 10  # a real image
    assert a != b


def test_cfg_pp_entries_are_listed_where_the_host_hands_over_the_uncond(webui):  # noqa: F811
    names = [i["name"] for i in webui.get("/sdapi/v1/samplers")]
    forms = {s.id: s for s in cfg_pp_forms()}
    labels = [sampler_label(s) for s in forms.values()]
    if webui.kind not in EXPOSES_UNCOND:
        assert not set(labels) & set(names)
        return
    for label in labels:
        assert names.count(label) == 1, label
    label = sampler_label(forms["seeds_2_cfg_pp"])
    r = webui.txt2img(label, seed=3, steps=STEPS, cfg_scale=8.0)
    assert H.infotext_fields(r["info"]["infotexts"][0])["Sampler"] == label
    size, px = H.pixels(r["images"][0])
    assert size == (64, 64) and len(set(px)) > 10
