"""The extension's entry script as the webui runs it: ``scripts/seeds_samplers_webui.py``
executed by file path (module name = the file name, the extension folder on ``sys.path``
only while it imports), from a copy of the repository in a folder with another name,
against stand-in ``modules`` (tests/support/webui_standins.py); twice, as Reload UI does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))
GENERIC = ["scripts", "nodes", "utils", "samplers", "webui", "bench", "digits"]

FAKE_MODULES = '''
import sys
from support import webui_standins as S

_host = S.make_host()
for _name in ("sd_samplers", "sd_samplers_common", "sd_samplers_kdiffusion", "sd_schedulers", "shared", "scripts"):
    globals()[_name] = getattr(_host, _name)
    sys.modules["modules." + _name] = getattr(_host, _name)
'''

FAKE_GRADIO = '''
class _Component:
    def __init__(self, *a, **kw):
        self.kw = kw
Checkbox = Dropdown = Slider = Number = _Component
'''

RUNNER = '''
import importlib.util, json, os, sys
ext = sys.argv[1]
path = os.path.join(ext, "scripts", "seeds_samplers_webui.py")
classes = []
for _ in range(2):  # start-up, then Reload UI
    sys.path.insert(0, ext)  # the webui adds the extension folder while the script imports
    try:
        spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(ext)
    classes += [k for k, v in vars(module).items() if isinstance(v, type)]  # what the webui scans
import modules
host = hasattr(modules, "sd_samplers")
print(json.dumps({
    "package_file": sys.modules["seeds_samplers"].__file__,
    "names": [d.name for d in modules.sd_samplers.all_samplers] if host else None,
    "schedulers": [s.name for s in modules.sd_schedulers.schedulers] if host else None,
    "top_level": sorted(m for m in sys.modules if "." not in m),
    "script_classes": classes,
}))
'''


def _copy(tmp_path):
    dst = tmp_path / "My Extension-1"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".git", "tests", "docs", "*.egg-info", "__pycache__", ".benchmarks", "workflows", "out", "*_out"))
    return dst


def _run(tmp_path, ext, with_host=True):
    fake = tmp_path / "host"
    (fake / "modules").mkdir(parents=True, exist_ok=True)
    if with_host:
        (fake / "modules" / "__init__.py").write_text(FAKE_MODULES)
        (fake / "gradio.py").write_text(FAKE_GRADIO)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(fake), TESTS])
    return subprocess.run([sys.executable, "-c", RUNNER, str(ext)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_script_registers_from_any_folder_name_and_twice_adds_nothing(tmp_path):
    from seeds_samplers.samplers.registry import SAMPLERS, SCHEDULES
    from seeds_samplers.webui.naming import sampler_label

    ext = _copy(tmp_path)
    r = _run(tmp_path, ext)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["package_file"].startswith(str(ext))  # this folder's copy, as seeds_samplers
    for spec in SAMPLERS.values():
        assert out["names"].count(sampler_label(spec)) == 1
    for spec in SCHEDULES.values():
        assert out["schedulers"].count(spec.host_name) == 1
    assert not set(out["top_level"]) & set(GENERIC), "a generic top-level name was imported"
    assert out["script_classes"] == ["SeedsSamplersScript"] * 2  # one always-on Script per run, once
    assert r.stdout.count("SEEDS Samplers: added") == 1  # the reload replaced, did not add


def test_script_without_a_webui_logs_once_and_does_not_raise(tmp_path):
    ext = _copy(tmp_path)
    r = _run(tmp_path, ext, with_host=False)  # an empty "modules" package: no webui
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("SEEDS Samplers: webui integration failed to load") == 2  # once per run
    assert "Traceback" in r.stderr and "unaffected" in r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["script_classes"] == [] and out["package_file"].startswith(str(ext))
