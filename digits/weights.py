"""Saving and loading the digits networks: safetensors only (no pickle), with the
architecture and model kind in the file's metadata, checked on load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple, Union

import torch

__all__ = ["WEIGHTS_DIR", "FORMAT", "save_weights", "load_weights", "weights_path"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "seeds-digits-v1"


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def save_weights(path: Union[str, Path], state: Dict[str, torch.Tensor], kind: str, config: dict) -> None:
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "kind": kind, "config": json.dumps(config)}
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path), metadata=meta)


def load_weights(path: Union[str, Path], kind: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The state dict and architecture config of a weight file of the given kind.

    Raises ``ValueError`` naming the file and the problem for a missing, corrupt or
    mismatched file (another format or model kind)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"digits weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt file
        raise ValueError(f"{path.name} is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a SEEDS digits weight file (format {meta.get('format')!r})")
    if meta.get("kind") != kind:
        raise ValueError(f"{path.name} holds a {meta.get('kind')!r} model, expected {kind!r}")
    try:
        config = json.loads(meta["config"])
    except Exception:  # noqa: BLE001
        raise ValueError(f"{path.name} has no valid architecture config in its metadata") from None
    return state, config
