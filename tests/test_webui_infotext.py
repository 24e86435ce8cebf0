"""Parameters <-> infotext: every parameter of every sampler and schedule is written to
the infotext and read back by the webui's paste rule (an option's ``infotext`` name,
its value cast to the option default's type) to the same value, for values that are
not the defaults; and the text survives the webui's ``key: value, ...`` format."""

from __future__ import annotations

import json
import re

import pytest

from support import webui_standins as S

from seeds_samplers.samplers.registry import SAMPLERS, SCHEDULES  # noqa: E402
from seeds_samplers.webui import setup_webui  # noqa: E402
from seeds_samplers.webui.naming import (  # noqa: E402
    infotext_fields, infotext_title, sampler_settings, schedule_settings, values_from_infotext,
    values_from_options,
)

ALL = [(spec.id, sampler_settings(spec)) for spec in SAMPLERS.values()] + [
    ("schedule_" + spec.id, schedule_settings(spec)) for spec in SCHEDULES.values() if spec.params]


def other_value(s):
    """A valid value different from the setting's default (an awkward float when possible)."""
    p = s.param
    if p.kind == "bool":
        return not s.default
    if p.kind == "choice":
        return next(c for c in p.choices if c != s.default)
    lo = p.minimum if p.minimum is not None else s.default - 1
    hi = p.maximum if p.maximum is not None else s.default + 1
    if p.kind == "int":
        return next(v for v in range(int(lo), int(hi) + 1) if v != s.default)
    v = lo + (hi - lo) / 3.0
    return v if v != s.default else lo + (hi - lo) / 7.0


def webui_text(fields):
    """``key: value`` pairs joined as the webui writes them (values with , : or " quoted)."""
    def q(v):
        v = str(v)
        return json.dumps(v) if any(c in v for c in ',:"\n') else v
    return ", ".join(f"{k}: {q(v)}" for k, v in fields.items())


FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse(text):
    out = {}
    for key, value in FIELD.findall(text):
        out[key.strip()] = json.loads(value) if value.startswith('"') else value.strip()
    return out


@pytest.mark.parametrize("owner,settings", ALL, ids=[a for a, _ in ALL])
def test_round_trip(owner, settings):
    values = {s.param.name: other_value(s) for s in settings}
    fields = infotext_fields(settings, values)
    text = "Steps: 4, Sampler: X, " + webui_text(fields) + ", Seed: 1"
    parsed = parse(text)
    assert parsed["Steps"] == "4" and parsed["Seed"] == "1"
    back = values_from_infotext(settings, parsed)
    assert back == {s.key: values[s.param.name] for s in settings}
    for s in settings:
        assert type(back[s.key]) is type(s.default)


def test_paste_turns_the_infotext_into_override_settings():
    """Through the webui's own rule: options whose infotext name is in the pasted text
    and whose value differs from the current setting become overrides."""
    h = S.make_host()
    setup_webui(S.host_modules(h))
    for owner, settings in ALL:
        values = {s.param.name: other_value(s) for s in settings}
        parsed = parse(webui_text(infotext_fields(settings, values)))
        overrides = {key: v for _, key, v in S.get_override_settings(h.shared.opts, parsed)}
        assert overrides == {s.key: values[s.param.name] for s in settings}, owner
        # the defaults paste to no override at all
        defaults = parse(webui_text(infotext_fields(settings, {s.param.name: s.default for s in settings})))
        assert S.get_override_settings(h.shared.opts, defaults) == []


def test_infotext_names_are_unique_and_valid_keys():
    names = [s.infotext for _, settings in ALL for s in settings]
    assert len(set(names)) == len(names)
    for n in names:
        assert FIELD.fullmatch(f"{n}: 1") is not None, n
    assert infotext_title("EDM (rho)") == "EDM"
    assert infotext_title("ER-SDE-Solver") == "ER-SDE-Solver"


@pytest.mark.parametrize("text,expected", [("False", False), ("True", True), ("false", False),
                                           ("true", True), (False, False), (True, True), (0, False), (1, True)])
def test_a_bool_setting_given_as_text_is_read_as_written(text, expected):
    """override_settings / PNG Info hand bools back as the text the infotext holds:
    ``"False"`` must run False (``bool("False")`` is True, seen in A1111 v1.10.1)."""
    settings = sampler_settings(SAMPLERS["deis"])
    s = next(s for s in settings if s.param.name == "stop_at_sigma_min")
    opts = type("Opts", (), {s.key: text})()
    assert values_from_options(settings, opts)["stop_at_sigma_min"] is expected
    assert s.param.check(text) is expected


@pytest.mark.parametrize("text", ["maybe", "", "2", 2, 0.5, None, "Falsey"])
def test_a_bool_setting_refuses_other_text_naming_the_parameter(text):
    settings = sampler_settings(SAMPLERS["deis"])
    s = next(s for s in settings if s.param.name == "stop_at_sigma_min")
    with pytest.raises(ValueError, match="stop_at_sigma_min"):
        s.param.check(text)
    with pytest.raises(ValueError, match=s.key):
        values_from_options(settings, type("Opts", (), {s.key: text or "maybe"})())
