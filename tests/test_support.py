"""The test helpers' own promises (tests/support/): the ComfyUI-checkout helpers find a
checkout only where there is one, and importing from it leaves ``sys.path`` and
``sys.modules`` as they were."""

from __future__ import annotations

import os
import sys
import types

from support import comfy_checkout


def _fake_checkout(tmp_path):
    """The files that make a ComfyUI checkout, and a top-level ``utils`` package as ComfyUI has."""
    (tmp_path / "main.py").write_text("")
    for package in ("comfy", "utils"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"WHERE = {package!r}\n")
    (tmp_path / "comfy" / "samplers.py").write_text("NAMES = ['euler']\n")
    return tmp_path


def test_comfyui_root_needs_a_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("COMFYUI_ROOT", raising=False)
    assert comfy_checkout.comfyui_root() is None
    monkeypatch.setenv("COMFYUI_ROOT", str(tmp_path))
    assert comfy_checkout.comfyui_root() is None  # an empty folder is not a checkout
    _fake_checkout(tmp_path)
    monkeypatch.setenv("COMFYUI_ROOT", str(tmp_path) + os.sep)
    assert comfy_checkout.comfyui_root() == str(tmp_path)  # absolute, as sys.path entries compare


def test_importable_puts_everything_back(tmp_path, monkeypatch):
    root = str(_fake_checkout(tmp_path))
    stand_in = types.ModuleType("comfy")  # what a stand-in test had registered before
    monkeypatch.setitem(sys.modules, "comfy", stand_in)
    monkeypatch.delitem(sys.modules, "utils", raising=False)
    path_before = list(sys.path)
    with comfy_checkout.importable(root):
        assert sys.path[0] == root
        del sys.modules["comfy"]  # as a test would, to import the real package
        import comfy.samplers
        import utils

        assert comfy.samplers.NAMES == ["euler"] and utils.WHERE == "utils"
    assert sys.path == path_before
    assert sys.modules["comfy"] is stand_in
    assert "comfy.samplers" not in sys.modules and "utils" not in sys.modules
