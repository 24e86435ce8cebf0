"""Saving and loading the digits networks: safetensors only (no pickle), with the
architecture and model kind in the file's metadata, checked on load."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple, Union

import torch

from ..tensor_files import read_tagged, write_tagged

__all__ = ["WEIGHTS_DIR", "FORMAT", "save_weights", "load_weights", "weights_path"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "seeds-digits-v1"


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def save_weights(path: Union[str, Path], state: Dict[str, torch.Tensor], kind: str, config: dict) -> None:
    write_tagged(path, state, FORMAT, config, kind=kind)


def load_weights(path: Union[str, Path], kind: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The state dict and architecture config of a weight file of the given kind.

    Raises ``ValueError`` naming the file and the problem for a missing, corrupt or
    mismatched file (another format or model kind)."""
    state, meta, config = read_tagged(path, FORMAT, "digits weights", "SEEDS digits weight file",
                                      "architecture config")
    if meta.get("kind") != kind:
        raise ValueError(f"{Path(path).name} holds a {meta.get('kind')!r} model, expected {kind!r}")
    return state, config
