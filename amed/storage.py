"""AMED predictor files: safetensors weights with the training configuration as JSON in the
file's metadata (and optionally a ``.json`` beside it), checked against the run on load.

A predictor is tied to what it was trained on (paper Sec. 3.3 and 4: one predictor per
time schedule and NFE): the grid of positive sigmas, the model family and parameterisation,
the solver and its settings, the feature mode and the CFG scale. :func:`check_compatible`
raises ``ValueError`` naming the first mismatch of grid, model type or family, and warns
(documented fallback: run anyway) for a different CFG scale, which changes the
trajectories but not the meaning of the predictor's outputs.

No pickle anywhere: official ``.pkl`` / ``.pt`` predictors go through
:mod:`seeds_samplers.amed.convert` first.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from ..samplers.amed import check_grid
from ..samplers.amed_core import AMED_SOLVERS, PREDICTIONS
from ..samplers.amed_predictor import AMEDPredictor
from ..tensor_files import read_tagged, write_tagged

__all__ = ["FORMAT", "FEATURE_MODES", "save_predictor", "load_predictor", "predictor_from_state",
           "check_compatible", "describe", "REQUIRED_KEYS"]

FORMAT = "seeds-amed-v1"
FEATURE_MODES = ("bottleneck", "time")
REQUIRED_KEYS = ("solver", "afs", "feature_mode", "feature_size", "scale_dir", "scale_time", "sigmas", "model_type")


def _validate_config(cfg: Mapping[str, Any], name: str) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"{name}: AMED predictor metadata lacks {missing}")
    if cfg["solver"] not in AMED_SOLVERS:
        raise ValueError(f"{name}: unknown AMED solver {cfg['solver']!r} (known: {AMED_SOLVERS})")
    if cfg["feature_mode"] not in FEATURE_MODES:
        raise ValueError(f"{name}: feature_mode must be one of {FEATURE_MODES}, got {cfg['feature_mode']!r}")
    if cfg.get("prediction", "data") not in PREDICTIONS:
        raise ValueError(f"{name}: prediction must be one of {PREDICTIONS}")
    s = cfg["sigmas"]
    if not isinstance(s, list) or len(s) < 2 or any(not (a > b > 0) for a, b in zip(s, s[1:])):
        raise ValueError(f"{name}: the trained grid must be >= 2 strictly decreasing positive sigmas")


def predictor_from_state(state: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                         name: str = "predictor") -> AMEDPredictor:
    """Build an :class:`AMEDPredictor` from a state dict and config (shapes checked)."""
    _validate_config(config, name)
    pred = AMEDPredictor(int(config["feature_size"]), float(config["scale_dir"]), float(config["scale_time"]))
    expected = pred.state_dict()
    extra = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if extra or missing:
        raise ValueError(f"{name}: parameter names do not match the AMED predictor (missing {missing}, "
                         f"unexpected {extra}); check scale_dir / scale_time in its metadata")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{name}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    pred.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    pred.config = dict(config)
    return pred.eval().requires_grad_(False)


def save_predictor(path: Union[str, Path], predictor: AMEDPredictor, config: Mapping[str, Any],
                   sidecar: bool = True) -> Path:
    """Write ``predictor`` with ``config`` (JSON in the safetensors metadata; with
    ``sidecar`` also ``<name>.json`` beside it). Returns the path written."""
    path = Path(path)
    cfg = dict(config)
    cfg.setdefault("feature_size", predictor.feature_size)
    cfg.setdefault("scale_dir", predictor.scale_dir)
    cfg.setdefault("scale_time", predictor.scale_time)
    _validate_config(cfg, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tagged(path, {k: v.to(torch.float32) for k, v in predictor.state_dict().items()}, FORMAT, cfg)
    if sidecar:
        path.with_suffix(".json").write_text(json.dumps(cfg, indent=1) + "\n")
    return path


def load_predictor(path: Union[str, Path]) -> AMEDPredictor:
    """Read a predictor file written by :func:`save_predictor`; its config is ``.config``.

    Raises ``ValueError`` naming the file and the problem (missing, not safetensors, not an
    AMED predictor, inconsistent metadata or shapes)."""
    path = Path(path)
    state, _, cfg = read_tagged(path, FORMAT, "AMED predictor", "SEEDS AMED predictor", "AMED configuration",
                                hint="; official .pkl/.pt predictors need "
                                     "`python -m seeds_samplers amed-train --convert` first")
    pred = predictor_from_state(state, cfg, path.name)
    pred.source = str(path)
    return pred


def check_compatible(config: Mapping[str, Any], *, sigmas: Optional[Sequence[float]] = None,
                     model_type: Optional[str] = None, model_family: Optional[str] = None,
                     cfg_scale: Optional[float] = None, feature_available: Optional[bool] = None) -> None:
    """Raise ``ValueError`` naming the mismatch between a predictor and a run.

    Args:
        config: the predictor's configuration.
        sigmas: the run's schedule (a trailing 0 is ignored); must equal the trained grid.
        model_type: ``"ve"`` or ``"flow"``.
        model_family: the host's model family name (e.g. ComfyUI's ``SD15``); must equal
            the trained one when both are known.
        cfg_scale: the run's CFG scale; a different one only warns (``UserWarning``).
        feature_available: False when the model has no bottleneck (DiT / flow transformer):
            a feature-mode predictor cannot run there.
    """
    if model_type is not None and config.get("model_type") not in (None, model_type):
        raise ValueError(f"AMED predictor model type mismatch: trained on {config['model_type']!r}, "
                         f"this model is {model_type!r}")
    fam = config.get("model_family")
    if model_family and fam and fam != model_family:
        raise ValueError(f"AMED predictor model family mismatch: trained on {fam!r}, this model is {model_family!r}")
    if sigmas is not None:
        pos = [float(s) for s in sigmas if float(s) > 0]
        check_grid(config, pos, model_type or config.get("model_type", "ve"))
    if feature_available is False and config.get("feature_mode") == "bottleneck":
        raise ValueError("this AMED predictor reads the U-Net bottleneck feature, which this model does not have; "
                         "train a time-only predictor (feature_mode 'time')")
    trained_cfg = config.get("cfg")
    if cfg_scale is not None and trained_cfg is not None and abs(float(trained_cfg) - float(cfg_scale)) > 1e-6:
        warnings.warn(f"AMED predictor was trained at CFG {trained_cfg}, this run uses {cfg_scale}: it still runs, "
                      f"but the learned time steps are tuned for the trained scale (retrain for best results)",
                      UserWarning, stacklevel=2)


def describe(config: Mapping[str, Any]) -> str:
    """One line for logs and node tooltips."""
    base = "AMED-Solver" if config.get("solver") == "amed" else f"AMED-Plugin({config.get('solver')})"
    n = len(config.get("sigmas", [])) - 1
    return (f"{base}, {n} steps, {config.get('schedule', '?')} schedule, {config.get('feature_mode')} mode, "
            f"afs={config.get('afs')}, model {config.get('model_family', '?')} ({config.get('model_type')}), "
            f"cfg {config.get('cfg', '-')}")
