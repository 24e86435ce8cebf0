"""AUTOMATIC1111 / Forge / reForge / Forge Classic integration: thin glue generated from the registries.

:func:`setup_webui` (called at import of the extension's ``scripts/seeds_samplers_webui.py``,
before the webui builds its UI and API) adds

* every sampler of ``SAMPLERS`` to the txt2img/img2img sampler menu and
  ``/sdapi/v1/samplers`` as ``<title> (SS)`` (:mod:`.registration`, :mod:`.sampler`), and
  their CFG++ forms where the host's CFG denoiser hands over the unconditional prediction
  (``<title> CFG++ (SS)``; :func:`.sampler.exposes_uncond`);
* every schedule of ``SCHEDULES`` to the "Schedule type" menu and ``/sdapi/v1/schedulers``
  (Forge Classic: to the choices of its "Scheduler type" setting);
* a Settings section "SEEDS Samplers" with every parameter (:mod:`.naming`), written to the
  infotext and read back from it.

All ``modules`` (webui) imports live in this package; :mod:`.naming` needs no host. A
failure is logged once with its cause and leaves the webui and its own samplers working.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Dict, Optional

__all__ = ["setup_webui"]

log = logging.getLogger("seeds_samplers")


def setup_webui(host: Optional[Dict[str, Any]] = None) -> Optional[type]:
    """Register everything in the running webui; returns the always-on Script class for
    the extension's script module to expose (None when there is none, or on failure).

    ``host`` maps ``sd_samplers``, ``sd_samplers_common``, ``sd_samplers_kdiffusion``,
    ``sd_schedulers`` (None on a webui without that module: Forge Classic), ``shared``,
    ``scripts`` to modules (default: the webui's own).
    Running it again (Reload UI, a second copy of the extension) adds nothing twice.
    """
    try:
        if host is None:
            from modules import (  # the webui's package
                scripts, sd_samplers, sd_samplers_common, sd_samplers_kdiffusion, shared)

            try:
                from modules import sd_schedulers  # A1111 >= 1.9, Forge, reForge: a "Schedule type" menu
            except ImportError:  # Forge Classic (A1111 1.8 base): the schedule is the "Scheduler type" setting
                sd_schedulers = None
            try:
                from modules import sd_samplers_cfg_denoiser  # CFG++ entries where it keeps the uncond
            except ImportError:
                sd_samplers_cfg_denoiser = None
            host = dict(sd_samplers=sd_samplers, sd_samplers_common=sd_samplers_common,
                        sd_samplers_kdiffusion=sd_samplers_kdiffusion, sd_schedulers=sd_schedulers,
                        shared=shared, scripts=scripts, sd_samplers_cfg_denoiser=sd_samplers_cfg_denoiser)
        from ..samplers.cfg_pp import menu_entries
        from .registration import register_samplers, register_schedulers, register_settings
        from .sampler import exposes_uncond
        from .script import make_script_class

        register_settings(host["shared"], host.get("components"))
        schedules = register_schedulers(host["sd_schedulers"], host["shared"], host["sd_samplers_kdiffusion"])
        # the CFG++ forms only where the host's CFG denoiser hands over the uncond (webui/sampler.py)
        specs = menu_entries(cfg_pp=exposes_uncond(host.get("sd_samplers_cfg_denoiser")))
        samplers = register_samplers(host["sd_samplers"], host["sd_samplers_common"],
                                     host["sd_samplers_kdiffusion"], host["sd_schedulers"], host["shared"], specs)
        script = make_script_class(host["scripts"], host["shared"]) if host.get("scripts") is not None else None
    except Exception as e:  # noqa: BLE001 - never stop the webui from starting
        log.error("SEEDS Samplers: webui integration failed to load (%s: %s); the webui's own samplers are "
                  "unaffected\n%s", type(e).__name__, e, traceback.format_exc())
        return None
    if samplers["added"] or schedules["added"]:
        print(f"SEEDS Samplers: added samplers {samplers['added']} and schedules {schedules['added']}")
    skipped = samplers["skipped"] + schedules["skipped"]
    if skipped:
        log.warning("SEEDS Samplers: names already taken, not added: %s", skipped)
    return script
