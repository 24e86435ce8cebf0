"""An always-on webui ``Script`` without controls: writes the parameters of a schedule of
ours to the infotext when a generation uses it (with any sampler, in the first pass or
in hires fix), so a pasted infotext reproduces the schedule. A scheduler function gets no
``p``; ``process(p)`` runs before sampling with it."""

from __future__ import annotations

from typing import Any, Optional

from ..samplers.schedules import SCHEDULES
from .naming import SCHEDULE_SETTING, infotext_fields, schedule_label, schedule_settings, values_from_options

__all__ = ["make_script_class", "schedule_infotext"]


def schedule_infotext(p: Any, opts: Any) -> dict:
    """Infotext fields of our schedules that ``p`` uses (first pass and hires; on a webui
    whose ``p`` has no ``scheduler``, Forge Classic, the "Scheduler type" setting)."""
    out = {}
    if hasattr(p, "scheduler"):
        used = [getattr(p, "scheduler", None), getattr(p, "hr_scheduler", None)]
    else:
        used = [getattr(opts, SCHEDULE_SETTING, None)]
    for chosen in used:
        for spec in SCHEDULES.values():
            if spec.params and chosen in (spec.host_name, schedule_label(spec)):
                settings = schedule_settings(spec)
                out.update(infotext_fields(settings, values_from_options(settings, opts)))
    return out


def make_script_class(scripts_mod: Any, shared: Any) -> Optional[type]:
    base = getattr(scripts_mod, "Script", None)
    if base is None:
        return None

    class SeedsSamplersScript(base):
        sorting_priority = 1000

        def title(self):
            return "SEEDS Samplers"

        def show(self, is_img2img):
            return scripts_mod.AlwaysVisible

        def ui(self, is_img2img):
            return []

        def process(self, p, *args):
            p.extra_generation_params.update(schedule_infotext(p, shared.opts))

    SeedsSamplersScript.__name__ = SeedsSamplersScript.__qualname__ = "SeedsSamplersScript"
    return SeedsSamplersScript
