"""SEEDS Samplers in AUTOMATIC1111 / Forge / reForge.

The webui executes every ``scripts/*.py`` of an extension at start-up and on "Reload UI",
before it builds the UI and the API. This file loads the extension folder as the package
``seeds_samplers`` (whatever the folder is called; never as ``scripts``, ``modules``,
``nodes`` or ``utils``) and registers the samplers, schedules and settings
(``seeds_samplers.webui.setup_webui``). Any failure is printed once and leaves the webui
running with its own samplers.
"""

import importlib.util
import os
import sys
import traceback

PACKAGE = "seeds_samplers"


def _load_package():
    """The pack as ``seeds_samplers``: the copy already imported, else this folder's."""
    mod = sys.modules.get(PACKAGE)
    if mod is not None:
        return mod
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        PACKAGE, os.path.join(root, "__init__.py"), submodule_search_locations=[root])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(PACKAGE, None)
        raise
    return mod


try:
    _load_package()
    from seeds_samplers.webui import setup_webui

    # the webui collects the Script subclasses among this module's globals: exactly one name
    SeedsSamplersScript = setup_webui()
    if SeedsSamplersScript is None:
        del SeedsSamplersScript
except Exception as _e:  # noqa: BLE001 - never stop the webui from starting
    print(f"*** SEEDS Samplers: failed to load ({type(_e).__name__}: {_e}); the webui's own samplers are "
          f"unaffected\n{traceback.format_exc()}", file=sys.stderr)
