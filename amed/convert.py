"""Convert official AMED predictors (``network-snapshot-*.pkl`` and ``.pt`` files of the
diff-sampler ``amed-solver-main`` code) to this pack's safetensors format **without
executing any pickled code**.

The official files pickle the predictor with EDM's ``persistence`` module, which embeds the
class *source code* in the pickle and runs it on load; plain ``pickle.load`` or
``torch.load`` would therefore execute whatever the file contains. Here the pickle stream
is interpreted by :class:`SafeUnpickler`, whose ``find_class`` never imports anything:

* the tensor-rebuild functions (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``,
  ``torch.storage._load_from_bytes`` and the storage type tags) map to local functions that
  build tensors from raw bytes (``_load_from_bytes`` payloads are parsed by the same
  unpickler, never by ``torch.load``);
* container types (``collections.OrderedDict``, ``set``, ...) map to the builtins;
* object constructors under an allow-list of module prefixes (``torch.nn.``,
  ``torch_utils.``, ``training.``, ``copyreg``) map to an inert :class:`Stub` that only
  records its name, arguments and state; EDM's ``_reconstruct_persistent_obj`` maps to a
  function that keeps the metadata (the embedded source stays an unexecuted string);
* every other global (``os.system``, ``builtins.eval``, ``subprocess.*``, ...) is refused
  with :class:`UnsafePickleError` naming it;
* the ``BUILD`` opcode (set an object's state) is allowed on the stubs only: elsewhere it
  would set attributes on whatever is on the stack, this module's own helper functions
  included (``_rebuild_tensor.__defaults__``), and the change would outlive the load.

``.pt`` zip archives (``torch.save``) are read entry by entry with :mod:`zipfile`: the
``data.pkl`` stream through the same unpickler, the tensor bytes from ``data/<key>``. The
old non-zip ``torch.save`` layout (``_use_new_zipfile_serialization=False``) is refused as
an unsupported format.

The predictor's attributes (``sampler_stu``, ``afs``, ``scale_dir``, ``schedule_type``, ...)
become the pack's metadata; the grid is rebuilt from the official schedule formulas
(ALGORITHMS restated in docs/amed.md) with the model's sigma range (defaults by dataset).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from ..samplers.amed_predictor import AMEDPredictor
from .storage import predictor_from_state

__all__ = ["SafeUnpickler", "UnsafePickleError", "Stub", "safe_load", "convert_official", "official_grid",
           "STATE_KEYS"]

STATE_KEYS = ("map_layer0", "enc_layer0", "enc_layer1", "fc_r", "fc_scale_dir", "fc_scale_time")

_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
_STUB_PREFIXES = ("torch.nn.", "torch_utils.", "training.", "dnnlib.", "copyreg", "__main__")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafePickleError(ValueError):
    """The pickle references a global this converter will not provide."""


class Stub:
    """An inert stand-in for a pickled object: records class name, args and state; runs nothing."""

    _stub_name = "object"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<Stub {self._stub_name}>"


def _stub_class(name: str) -> type:
    return type("Stub_" + name.replace(".", "_"), (Stub,), {"_stub_name": name})


class _StorageTag:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _Storage:
    """Raw bytes of one storage (filled from a zip entry or a legacy payload)."""

    def __init__(self, dtype: torch.dtype, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None

    def tensor(self) -> torch.Tensor:
        if self.data is None:
            raise UnsafePickleError("a tensor's storage bytes are missing")
        arr = np.frombuffer(bytearray(self.data), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).view(self.dtype) if len(arr) else torch.empty(0, dtype=self.dtype)


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, _Storage):
        raise UnsafePickleError("tensor rebuild without a storage")
    flat = storage.tensor()
    return torch.as_strided(flat, tuple(size), tuple(stride), int(offset)).clone()


def _rebuild_parameter(data: torch.Tensor, *rest: Any) -> torch.Tensor:
    return data


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


def _reconstruct_persistent_obj(meta: Any) -> Stub:
    """EDM persistence: keep class name and state; the embedded module source is NOT run."""
    obj = _stub_class(str(meta.get("class_name", "persistent") if isinstance(meta, dict) else "persistent"))()
    obj.state = meta.get("state") if isinstance(meta, dict) else None
    obj.meta = {k: v for k, v in meta.items() if k != "module_src"} if isinstance(meta, dict) else {}
    return obj


def _new_object(cls: type, *args: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, Stub):
        return cls()
    raise UnsafePickleError(f"object construction of {cls!r} is not allowed")


def _reconstructor(cls: Any, base: Any = None, state: Any = None) -> Any:
    return _new_object(cls)


class SafeUnpickler(pickle._Unpickler):
    """Unpickler that never imports: see the module docstring for what it maps.

    Built on the pure-Python unpickler because its opcode table can be changed: the C one
    applies ``BUILD`` to any object, and only the stubs may take state here.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def load_build(self) -> None:
        target = self.stack[-2] if len(self.stack) >= 2 else None
        if not isinstance(target, Stub):
            raise UnsafePickleError(f"refusing BUILD (set state) on {type(target).__name__} {target!r:.80}: "
                                    f"only the stand-ins of pickled objects take state")
        super().load_build()  # calls Stub.__setstate__

    dispatch[pickle.BUILD[0]] = load_build

    def __init__(self, file: Any, storages: Optional[Dict[str, _Storage]] = None,
                 zip_reader: Optional[Any] = None):
        super().__init__(file, encoding="latin1")
        self.storages = {} if storages is None else storages
        self.zip_reader = zip_reader

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch.storage" and name == "_load_from_bytes":
            return _load_from_bytes
        if module == "torch" and name in _DTYPES:
            return _StorageTag(_DTYPES[name])
        if module == "_codecs" and name == "encode":
            return _codecs_encode
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "dict", "list", "tuple"):
            return {"set": set, "frozenset": frozenset, "dict": dict, "list": list, "tuple": tuple}[name]
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return _reconstruct_persistent_obj
        if module == "copyreg" and name == "_reconstructor":
            return _reconstructor
        if module == "copyreg" and name == "__newobj__":
            return _new_object
        if module.startswith(_STUB_PREFIXES) and name[:1].isupper():
            return _stub_class(full)
        raise UnsafePickleError(f"refusing to load global {full!r} (an AMED predictor file contains only "
                                f"tensors, containers and module objects)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        tag, key = pid[1], str(pid[2])
        if not isinstance(tag, _StorageTag):
            raise UnsafePickleError(f"unknown storage type {tag!r}")
        numel = int(pid[4]) if len(pid) > 4 else 0
        st = self.storages.get(key)
        if st is None:
            st = _Storage(tag.dtype, numel)
            if self.zip_reader is not None:
                st.data = self.zip_reader(key)
            self.storages[key] = st
        return st


def _load_from_bytes(payload: bytes) -> _Storage:
    """A storage pickled by ``pickle.dump`` of a CPU tensor: legacy or zip ``torch.save`` bytes."""
    if payload[:2] == b"PK":
        out = _load_zip(io.BytesIO(payload))
        if not isinstance(out, _Storage):
            raise UnsafePickleError("storage payload did not contain a storage")
        return out
    f = io.BytesIO(payload)
    magic = SafeUnpickler(f).load()
    if magic != _LEGACY_MAGIC:
        raise UnsafePickleError("not a torch storage payload")
    SafeUnpickler(f).load()  # protocol version
    SafeUnpickler(f).load()  # system info
    storages: Dict[str, _Storage] = {}
    result = SafeUnpickler(f, storages).load()
    keys = SafeUnpickler(f).load()
    for key in keys:
        st = storages[str(key)]
        n = int(np.frombuffer(f.read(8), dtype="<i8")[0])
        item = torch.empty(0, dtype=st.dtype).element_size()
        st.data = f.read(n * item)
    return result


def _load_zip(fileobj: Any) -> Any:
    with zipfile.ZipFile(fileobj) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise UnsafePickleError("zip archive without data.pkl")
        prefix = pkl[0][: -len("data.pkl")]

        def reader(key: str) -> bytes:
            return z.read(f"{prefix}data/{key}")

        return SafeUnpickler(io.BytesIO(z.read(pkl[0])), zip_reader=reader).load()


def safe_load(path: Union[str, Path]) -> Any:
    """Interpret a ``.pkl`` / ``.pt`` file without executing code (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"PK":
        return _load_zip(io.BytesIO(data))
    root = SafeUnpickler(io.BytesIO(data)).load()
    if type(root) is int and root == _LEGACY_MAGIC:  # the first of the old layout's pickles
        raise ValueError(f"{path.name}: unsupported format: an old (non-zip) torch.save file; load it in "
                         f"a trusted environment and save it again with torch.save's default (zip) format")
    return root


def _state_of(obj: Any) -> Dict[str, Any]:
    st = obj.state if isinstance(obj, Stub) else obj
    if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):  # (dict, slots)
        st = st[0]
    return st if isinstance(st, dict) else {}


def _find_predictor(root: Any) -> Any:
    if isinstance(root, dict) and "model" in root:
        return root["model"]
    return root


def official_grid(num_steps: int, sigma_min: float, sigma_max: float, schedule_type: str, rho: float) -> list:
    """The official schedules (docs/amed.md): polynomial, logsnr, time_uniform, discrete."""
    from ..samplers.schedules import edm_sigmas, logsnr_uniform_sigmas, vp_time_uniform_sigmas

    if schedule_type == "polynomial":
        s = edm_sigmas(num_steps, sigma_min, sigma_max, rho=rho)
    elif schedule_type == "logsnr":
        s = logsnr_uniform_sigmas(num_steps, sigma_min, sigma_max)
    elif schedule_type == "time_uniform":
        s = vp_time_uniform_sigmas(num_steps, sigma_min, sigma_max, rho=rho)
    elif schedule_type == "discrete":
        # continuous time t in [t(sigma_min), 1] (t_k = k / 1000 of SD's table), linear in t,
        # sigma from log alpha interpolated linearly in t
        from ..samplers.schedules import sd_sigma_table

        table = sd_sigma_table()
        t_tab = torch.arange(1, len(table) + 1, dtype=torch.float64) / len(table)
        log_alpha = -0.5 * torch.log1p(table ** 2)
        la_min = -0.5 * np.log1p(sigma_min ** 2)
        la_max = -0.5 * np.log1p(sigma_max ** 2)
        t_min = float(np.interp(la_min, log_alpha.flip(0).numpy(), t_tab.flip(0).numpy()))
        t_max = float(np.interp(la_max, log_alpha.flip(0).numpy(), t_tab.flip(0).numpy()))
        t = np.linspace(t_max, t_min, num_steps) if rho == 1 else \
            (t_max + np.linspace(0, 1, num_steps) * (t_min ** (1 / rho) - t_max)) ** rho
        la = np.interp(t, t_tab.numpy(), log_alpha.numpy())
        s = torch.tensor(np.sqrt(np.expm1(-2 * la)), dtype=torch.float64)
    else:
        raise ValueError(f"unknown official schedule_type {schedule_type!r}")
    return [float(v) for v in s if float(v) > 0][:num_steps]


_DATASET_RANGES = {"cifar10": (0.002, 80.0), "ffhq": (0.002, 80.0), "imagenet64": (0.002, 80.0),
                   "afhqv2": (0.002, 80.0), "lsun_bedroom": (0.002, 80.0),
                   "ms_coco": (0.0292, 14.6146), "lsun_bedroom_ldm": (0.0292, 14.6146)}
_SOLVER_NAMES = {"amed": "amed", "euler": "euler", "dpm": "dpm_2", "ipndm": "ipndm", "dpmpp": "dpmpp_2m"}


def convert_official(path: Union[str, Path], sigma_min: Optional[float] = None,
                     sigma_max: Optional[float] = None) -> Tuple[AMEDPredictor, Dict[str, Any]]:
    """Read an official predictor safely; returns ``(predictor, config)`` for
    :func:`~seeds_samplers.amed.storage.save_predictor`."""
    root = safe_load(path)
    obj = _find_predictor(root)
    attrs = _state_of(obj)
    modules = attrs.get("_modules") or {}
    state: Dict[str, torch.Tensor] = {}
    for name, mod in modules.items():
        if mod is None:
            continue
        params = _state_of(mod).get("_parameters") or {}
        for pname, t in params.items():
            if isinstance(t, torch.Tensor):
                state[f"{name}.{pname}"] = t
    if not state:
        raise ValueError(f"{Path(path).name}: no predictor parameters found")
    unknown = sorted({k.split(".")[0] for k in state} - set(STATE_KEYS))
    if unknown:
        raise ValueError(f"{Path(path).name}: unexpected layers {unknown}; not an AMED predictor")
    stu = str(attrs.get("sampler_stu", "amed"))
    if stu not in _SOLVER_NAMES:
        raise ValueError(f"{Path(path).name}: student solver {stu!r} is not supported (supported: {list(_SOLVER_NAMES)})")
    max_order = int(attrs.get("max_order") or 2)
    if stu == "dpmpp" and max_order > 3:
        raise ValueError(f"{Path(path).name}: DPM-Solver++ plugin with max_order {max_order} (only 1-3 supported)")
    dataset = str(attrs.get("dataset_name", ""))
    lo, hi = _DATASET_RANGES.get(dataset, (None, None))
    lo = sigma_min if sigma_min is not None else lo
    hi = sigma_max if sigma_max is not None else hi
    if lo is None or hi is None:
        raise ValueError(f"{Path(path).name}: unknown dataset {dataset!r}; pass --sigma-min and --sigma-max")
    num_steps = int(attrs.get("num_steps", 0))
    sched = str(attrs.get("schedule_type", "polynomial"))
    rho = float(attrs.get("schedule_rho", 7.0))
    grid = official_grid(num_steps, lo, hi, sched, rho)
    scale_dir = float(attrs.get("scale_dir", 0.0) or 0.0)
    scale_time = float(attrs.get("scale_time", 0.0) or 0.0)
    if "fc_scale_dir.weight" not in state:
        scale_dir = 0.0
    if "fc_scale_time.weight" not in state:
        scale_time = 0.0
    config: Dict[str, Any] = dict(
        solver=_SOLVER_NAMES[stu], afs=bool(attrs.get("afs", False)), feature_mode="bottleneck",
        feature_size=int(state["enc_layer0.weight"].shape[1]), scale_dir=scale_dir, scale_time=scale_time,
        max_order=max_order, prediction="data" if attrs.get("predict_x0", True) else "noise",
        lower_order_final=bool(attrs.get("lower_order_final", True)), sigmas=grid, model_type="ve",
        sigma_min=lo, sigma_max=hi, schedule=f"official {sched} rho={rho}", steps=num_steps,
        model_family=dataset or None, cfg=attrs.get("guidance_rate"),
        official={k: v for k, v in attrs.items() if isinstance(v, (int, float, str, bool)) and not k.startswith("_")},
    )
    pred = predictor_from_state(state, config, Path(path).name)
    return pred, config
