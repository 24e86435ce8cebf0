"""The converter for official AMED predictors reads tensors and attributes without
executing pickled code (docs/amed.md, "Official predictors")."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections import OrderedDict

import pytest
import torch

from seeds_samplers.amed.convert import UnsafePickleError, convert_official, official_grid, safe_load
from seeds_samplers.amed.storage import load_predictor, save_predictor
from seeds_samplers.samplers.amed_predictor import AMEDPredictor
from seeds_samplers.samplers.schedules import edm_sigmas


@pytest.fixture()
def persistence_module(monkeypatch, tmp_path):
    """A stand-in for EDM's torch_utils.persistence: like the real one, loading its objects
    with plain pickle *executes the embedded module source*."""
    pkg = types.ModuleType("torch_utils")
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        ns: dict = {}
        exec(meta["module_src"], ns)  # what EDM's persistence does on load
        obj = ns["AMED_predictor"].__new__(ns["AMED_predictor"])
        obj.__dict__.update(meta["state"])
        return obj

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    return mod


def _official_like(persistence_mod, marker, scale_dir=0.01, scale_time=0.2):
    """An object that pickles like an official network-snapshot .pkl (dict with 'model')."""
    ref = AMEDPredictor(64, scale_dir, scale_time)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    modules = OrderedDict((n, m) for n, m in ref.named_children())
    attrs = dict(num_steps=4, sampler_stu="ipndm", sampler_tea="ipndm", M=2, guidance_type=None,
                 guidance_rate=None, schedule_type="polynomial", schedule_rho=7.0, afs=True,
                 dataset_name="cifar10", scale_dir=scale_dir, scale_time=scale_time, max_order=4,
                 predict_x0=True, lower_order_final=True, img_resolution=32, _modules=modules,
                 _parameters=OrderedDict(), training=False)
    src = f"open({str(marker)!r}, 'w').write('code ran')\nclass AMED_predictor:\n    pass\n"
    meta = dict(type="class", version=4, module_src=src, class_name="training.networks.AMED_predictor",
                state=attrs)

    class Persistent:
        def __reduce__(self):
            return (persistence_mod._reconstruct_persistent_obj, (meta,))

    return {"model": Persistent(), "loss_fn": None}, ref


@pytest.mark.parametrize("fmt", ["pkl", "pt"])
def test_official_predictor_converts_without_running_its_code(tmp_path, persistence_module, fmt):
    marker = tmp_path / "marker.txt"
    obj, ref = _official_like(persistence_module, marker)
    path = tmp_path / f"network-snapshot-000010.{fmt}"
    if fmt == "pkl":
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    pred, cfg = convert_official(path)
    assert not marker.exists(), "the converter executed code embedded in the pickle"
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(pred.state_dict()[k], v, rtol=0, atol=0)
    assert cfg["solver"] == "ipndm" and cfg["afs"] is True and cfg["max_order"] == 4
    assert cfg["scale_dir"] == 0.01 and cfg["scale_time"] == 0.2
    grid = [float(s) for s in edm_sigmas(4, 0.002, 80.0) if s > 0]
    assert cfg["sigmas"] == pytest.approx(grid, rel=1e-12)
    # the converted file round-trips through safetensors
    out = save_predictor(tmp_path / "conv.safetensors", pred, cfg)
    again = load_predictor(out)
    f = torch.randn(3, 8, 8)
    torch.testing.assert_close(again(f, 2.0, 1.0)[0], pred(f, 2.0, 1.0)[0])
    # ... whereas plain pickle really would have run it (the danger this guards against)
    if fmt == "pkl":
        pickle.loads(path.read_bytes())
        assert marker.exists()


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "subprocess.Popen"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    mod, name = payload.rsplit(".", 1)
    cmd = f"touch {marker}" if name != "exec" else f"open({str(marker)!r}, 'w').write('x')"

    class Evil:
        def __reduce__(self):
            fn = getattr(__import__(mod), name)
            return (fn, (cmd,) if name != "Popen" else (["touch", str(marker)],))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(UnsafePickleError, match=payload.split(".")[-1]):
        safe_load(path)
    with pytest.raises(ValueError):
        convert_official(path)
    assert not marker.exists()
    assert not os.path.exists(marker)


def test_official_grids():
    assert official_grid(5, 0.002, 80.0, "polynomial", 7.0)[0] == pytest.approx(80.0)
    g = official_grid(6, 0.0292, 14.6146, "discrete", 1.0)
    assert g[0] == pytest.approx(14.6146, rel=1e-3) and g[-1] == pytest.approx(0.0292, rel=1e-3)
    assert all(a > b for a, b in zip(g, g[1:]))
    with pytest.raises(ValueError, match="schedule_type"):
        official_grid(4, 0.002, 80.0, "bogus", 1.0)


def _build_on_rebuild_helper(state: bytes) -> bytes:
    """A pickle that puts the converter's tensor-rebuild helper on the stack and BUILDs
    ``state`` (pickle opcodes) onto it; no global outside the allow-list."""
    return (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n" + state
            + pickle.BUILD + pickle.STOP)


@pytest.mark.parametrize("how", ["slots", "dict"])
def test_a_pickle_cannot_set_attributes_on_the_converters_helpers(tmp_path, how):
    from seeds_samplers.amed import convert

    before = convert._rebuild_tensor.__defaults__, dict(convert._rebuild_tensor.__dict__)
    # (None, {"__defaults__": (7,)}) is setattr per key; {"marker": 7} goes into __dict__
    key, value = ("__defaults__", pickle.BININT1 + b"\x07" + pickle.TUPLE1) if how == "slots" else \
        ("marker", pickle.BININT1 + b"\x07")
    entry = pickle.MARK + pickle.SHORT_BINUNICODE + bytes([len(key)]) + key.encode() + value + pickle.DICT
    state = pickle.NONE + entry + pickle.TUPLE2 if how == "slots" else entry
    raw = _build_on_rebuild_helper(state)
    path = tmp_path / "build.pkl"
    path.write_bytes(raw)
    with pytest.raises(UnsafePickleError, match="BUILD.*function"):
        safe_load(path)
    assert (convert._rebuild_tensor.__defaults__, dict(convert._rebuild_tensor.__dict__)) == before
    # the same bytes through a plain unpickler do change the function they name (here torch's own)
    target = torch._utils._rebuild_tensor_v2
    saved = target.__defaults__, dict(target.__dict__)
    try:
        assert pickle.loads(raw) is target
        assert (target.__defaults__, dict(target.__dict__)) != saved
    finally:
        target.__defaults__ = saved[0]
        target.__dict__.pop("marker", None)


def test_an_old_format_torch_save_file_is_refused_as_unsupported(tmp_path, persistence_module):
    marker = tmp_path / "marker.txt"
    obj, _ = _official_like(persistence_module, marker)
    path = tmp_path / "network-snapshot-000010.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    for read in (safe_load, convert_official):
        with pytest.raises(ValueError, match="unsupported format: an old \\(non-zip\\) torch.save"):
            read(path)
    assert not marker.exists()
