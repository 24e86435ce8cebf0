"""The webui glue on a host without a schedule menu (Forge Classic, an A1111 1.8 base),
against stand-ins of its documented behaviour (tests/support/webui_standins.py,
``make_classic_host``): the schedules go into the "Scheduler type" setting, give the same
sigmas as through A1111's menu, take their parameters from the settings and write them to
the infotext. The same is checked on the real Forge Classic in test_webui_hosts.py."""

from __future__ import annotations

import pytest
import torch

from support import webui_standins as S

from seeds_samplers.samplers.cfg_pp import menu_entries  # noqa: E402
from seeds_samplers.samplers.registry import SAMPLERS, SCHEDULES  # noqa: E402
from seeds_samplers.webui import setup_webui  # noqa: E402
from seeds_samplers.webui.naming import (  # noqa: E402
    OWNER_OPTION, SCHEDULE_SETTING, sampler_label, schedule_label, schedule_settings,
)

LABELS = [schedule_label(s) for s in SCHEDULES.values()]


@pytest.fixture
def classic():
    h = S.make_classic_host()
    assert setup_webui(S.host_modules(h)) is not None
    return h


def _choices(h):
    return h.shared.opts.data_labels[SCHEDULE_SETTING].component_args["choices"]


def test_schedules_become_choices_of_the_scheduler_type_setting(classic):
    assert _choices(classic) == ["Automatic", "karras"] + LABELS
    table = classic.sd_samplers_kdiffusion.k_diffusion_scheduler
    assert list(table) == ["Automatic", "karras"] + LABELS
    # the samplers are there too
    assert [d.name for d in classic.sd_samplers.all_samplers if d.options.get(OWNER_OPTION)] == \
        [sampler_label(s) for s in menu_entries(cfg_pp=False)]  # no uncond kept: no CFG++ forms


def test_running_again_adds_nothing_twice(classic):
    for _ in range(2):
        setup_webui(S.host_modules(classic))
    assert _choices(classic) == ["Automatic", "karras"] + LABELS
    assert len(classic.sd_samplers_kdiffusion.k_diffusion_scheduler) == 2 + len(LABELS)


def test_a_host_schedule_of_that_name_is_kept():
    h = S.make_classic_host()
    label = LABELS[0]
    host_fn = h.sd_samplers_kdiffusion.k_diffusion_scheduler["karras"]
    h.sd_samplers_kdiffusion.k_diffusion_scheduler[label.upper()] = host_fn
    setup_webui(S.host_modules(h))
    assert h.sd_samplers_kdiffusion.k_diffusion_scheduler[label.upper()] is host_fn
    assert label not in h.sd_samplers_kdiffusion.k_diffusion_scheduler


@pytest.mark.parametrize("spec", list(SCHEDULES.values()), ids=list(SCHEDULES))
def test_same_sigmas_as_through_the_a1111_menu(classic, spec):
    """Classic passes no model to a schedule: the extension takes the host's own denoiser
    wrapper, so the sigmas (the model's discrete table included, which DEIS quadratic time
    uses) equal those of A1111's menu, which passes ``inner_model``."""
    classic.shared.opts.k_sched_type = schedule_label(spec)
    p = S.ClassicProcessing([1], steps=6)
    sampler = classic.sd_samplers.create_sampler(sampler_label(next(iter(SAMPLERS.values()))))
    got = sampler.get_sigmas(p, 6)
    a1111 = S.make_host()
    setup_webui(S.host_modules(a1111))
    ref = a1111.sd_samplers.create_sampler("Euler").get_sigmas(S.Processing([1], steps=6,
                                                                            scheduler=schedule_label(spec)), 6)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert p.extra_generation_params["Schedule type"] == schedule_label(spec)


def test_schedule_parameters_come_from_settings_and_go_to_the_infotext(classic):
    spec = next(s for s in SCHEDULES.values() if s.params)
    setting = schedule_settings(spec)[0]
    script = setup_webui(S.host_modules(classic))()
    classic.shared.opts.k_sched_type = schedule_label(spec)
    sampler = classic.sd_samplers.create_sampler(sampler_label(next(iter(SAMPLERS.values()))))
    p = S.ClassicProcessing([1], steps=6)
    before = sampler.get_sigmas(p, 6)
    value = setting.param.maximum if setting.default != setting.param.maximum else setting.param.minimum
    setattr(classic.shared.opts, setting.key, value)
    assert (before - sampler.get_sigmas(p, 6)).abs().max() > 1e-4
    script.process(p)
    assert p.extra_generation_params[setting.infotext] == repr(float(value))
    # with the host's own schedule chosen, none of ours is written
    classic.shared.opts.k_sched_type = "karras"
    q = S.ClassicProcessing([1], steps=6)
    script.process(q)
    assert setting.infotext not in q.extra_generation_params
