"""install.py: fast, idempotent, nothing to do on a complete Python; with and without
the webui's ``launch`` module; never raises."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL = os.path.join(ROOT, "install.py")


def load():
    spec = importlib.util.spec_from_file_location("seeds_samplers_install_under_test", INSTALL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_install_main(tmp_path, body: str) -> subprocess.CompletedProcess:
    """Run ``body`` in a fresh Python with install.py loaded as ``m`` and ``tmp_path`` (where
    a test writes its stand-in ``launch.py``) on the path."""
    code = ("import importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('inst', {INSTALL!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n" + body)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_requirements_match_the_project_dependencies():
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as a package
        import tomli as tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    assert sorted(req for _, req in load().REQUIREMENTS) == sorted(deps)


def test_runs_without_launch_and_does_nothing_when_complete(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for _ in range(2):  # idempotent
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, INSTALL], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
        elapsed = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "" and "Traceback" not in r.stderr
    print(f"install.py with nothing to install: {elapsed:.2f} s")


def test_missing_package_goes_through_launch_run_pip(tmp_path):
    """With the webui's ``launch`` importable (PYTHONPATH = webui root), a missing
    requirement is installed through ``launch.run_pip``; torch never is."""
    (tmp_path / "launch.py").write_text(
        "calls = []\n"
        "def is_installed(name):\n    return False\n"
        "def run_pip(command, desc=None):\n    calls.append(command)\n")
    r = _run_install_main(tmp_path,
                          "m.REQUIREMENTS = [('seeds_samplers_no_such_module', 'seeds-samplers-no-such-package'),"
                          " ('seeds_samplers_no_torch', 'torch-lookalike')]\n"
                          "m.NEVER_INSTALL = {'seeds_samplers_no_torch'}\n"
                          "todo = m.main()\n"
                          "import launch; print(launch.calls, len(todo))\n")
    assert r.returncode == 0, r.stderr
    assert "['install seeds-samplers-no-such-package'] 2" in r.stdout
    assert "install the build that matches your GPU" in r.stdout


def test_a_failing_install_is_reported_not_raised(tmp_path):
    (tmp_path / "launch.py").write_text(
        "def is_installed(name):\n    return False\n"
        "def run_pip(command, desc=None):\n    raise RuntimeError('pip failed: no network')\n")
    r = _run_install_main(tmp_path,
                          "m.REQUIREMENTS = [('seeds_samplers_no_such_module', 'seeds-samplers-no-such-package')]\n"
                          "m.main()\n")
    assert r.returncode == 0, r.stderr
    assert "could not install seeds-samplers-no-such-package: pip failed: no network" in r.stdout
