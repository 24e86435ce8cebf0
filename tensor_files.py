"""Weight files of this project: safetensors only (never pickle), with a format tag and a
JSON config in the file's metadata, read back with errors that name the file and the
problem. Used by the digits networks (:mod:`.digits.weights`) and AMED predictors
(:mod:`.amed.storage`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import torch

__all__ = ["write_tagged", "read_tagged"]


def write_tagged(path: Union[str, Path], tensors: Mapping[str, torch.Tensor], fmt: str,
                 config: Mapping[str, Any], **extra: str) -> None:
    """Save ``tensors`` with metadata {format: fmt, config: JSON of config, **extra}."""
    from safetensors.torch import save_file

    meta = {"format": fmt, "config": json.dumps(dict(config)), **extra}
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=meta)


def read_tagged(path: Union[str, Path], fmt: str, what: str, label: str, config_name: str,
                hint: str = "") -> Tuple[Dict[str, torch.Tensor], Dict[str, str], Dict[str, Any]]:
    """(tensors, metadata, config) of a file written by :func:`write_tagged` with ``fmt``.

    Raises ``ValueError``: "<what> not found" for a missing file, "not a readable
    safetensors file" (+ ``hint``) for a corrupt one, "not a <label>" for another format,
    "no valid <config_name>" for unreadable config metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt file
        raise ValueError(f"{path.name} is not a readable safetensors file ({e}){hint}") from None
    if meta.get("format") != fmt:
        raise ValueError(f"{path.name} is not a {label} (format {meta.get('format')!r})")
    try:
        config = json.loads(meta["config"])
    except Exception:  # noqa: BLE001
        raise ValueError(f"{path.name} has no valid {config_name} in its metadata") from None
    return state, meta, config
