"""``python -m seeds_samplers amed-train``: train an AMED predictor by distillation on one of
the test models (the digits U-Nets or the exact analytic mixture), or convert an official
predictor (``--convert FILE``). The training itself is :mod:`seeds_samplers.amed.train`;
this command sits in ``bench/`` because its models do: ``amed/`` serves the hosts' nodes
and never imports ``bench/`` or ``digits/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import torch

from ..amed.storage import FEATURE_MODES, save_predictor
from ..amed.train import TrainSettings, schedule_sigmas, student_nfe, train_predictor
from ..samplers.amed import DEFAULT_ORDERS
from ..samplers.amed_core import AMED_SOLVERS

__all__ = ["WEIGHTS", "load_model", "main"]

# The shipped predictors (docs/amed.md, Results).
WEIGHTS = Path(__file__).resolve().parent.parent / "amed_weights"


def load_model(name: str) -> Tuple[Any, Tuple[int, int, int], str]:
    """``digits-eps``, ``digits-flow`` (trained digits models) or ``gmm-vp`` / ``gmm-flow``
    (the exact analytic mixture; time-only mode only). Returns (model, latent shape, family)."""
    if name.startswith("digits-"):
        from ..digits.denoiser import load_digits_model

        m = load_digits_model(name.split("-", 1)[1])
        return m, (m.net.config.in_channels, 32, 32), name
    if name in ("gmm-vp", "gmm-flow"):
        from .gmm import AnalyticDenoiser

        m = AnalyticDenoiser(kind="vp_discrete" if name == "gmm-vp" else "flow", shift=1.0 if name == "gmm-vp" else 3.0)
        return m, (3, 32, 32), name
    raise ValueError(f"unknown model {name!r}; use digits-eps, digits-flow, gmm-vp or gmm-flow")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seeds_samplers amed-train",
                                description="Train an AMED predictor by distillation, or convert an official one.")
    p.add_argument("--model", default="digits-eps", help="digits-eps | digits-flow | gmm-vp | gmm-flow")
    p.add_argument("--schedule", default="logsnr_uniform", help="uniform or a registered schedule id")
    p.add_argument("--steps", type=int, default=4, help="sampler steps (sigma intervals incl. the final one to 0)")
    p.add_argument("--solver", default="amed", choices=AMED_SOLVERS, help="amed = AMED-Solver; else the plugin base")
    p.add_argument("--no-afs", dest="afs", action="store_false", help="no analytical first step")
    p.add_argument("--feature-mode", default="bottleneck", choices=FEATURE_MODES)
    p.add_argument("--scale-dir", type=float, default=0.01)
    p.add_argument("--scale-time", type=float, default=0.0)
    p.add_argument("--max-order", type=int, default=None, help="ipndm/deis 1-4 (default 3), dpmpp_2m 1-2 (default 2)")
    p.add_argument("--prediction", default="data", choices=("data", "noise"))
    p.add_argument("--teacher-substeps", type=int, default=8)
    p.add_argument("--trajectories", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--out", default=None, help="output .safetensors (default amed_weights/<name>.safetensors)")
    p.add_argument("--convert", default=None, help="convert an official .pkl/.pt predictor instead of training")
    p.add_argument("--sigma-min", type=float, default=None, help="--convert: the model's sigma_min")
    p.add_argument("--sigma-max", type=float, default=None, help="--convert: the model's sigma_max")
    a = p.parse_args(list(argv) if argv is not None else None)
    if a.threads:
        torch.set_num_threads(a.threads)
    command = "python -m seeds_samplers amed-train " + " ".join(sys.argv[2:] if argv is None else list(argv))
    if a.convert:
        from ..amed.convert import convert_official

        out = Path(a.out or Path(a.convert).with_suffix(".safetensors"))
        pred, cfg = convert_official(a.convert, sigma_min=a.sigma_min, sigma_max=a.sigma_max)
        cfg["command"] = command
        save_predictor(out, pred, cfg)
        print(f"wrote {out}: {json.dumps({k: cfg[k] for k in ('solver', 'afs', 'feature_mode')})}")
        return 0
    model, shape, family = load_model(a.model)
    order = a.max_order if a.max_order is not None else DEFAULT_ORDERS.get(a.solver, 1)
    s = TrainSettings(solver=a.solver, afs=a.afs, feature_mode=a.feature_mode, scale_dir=a.scale_dir,
                      scale_time=a.scale_time, max_order=order, prediction=a.prediction,
                      teacher_substeps=a.teacher_substeps, trajectories=a.trajectories, batch=a.batch, lr=a.lr,
                      seed=a.seed)
    sigmas = schedule_sigmas(model, a.schedule, a.steps)
    from tqdm.auto import tqdm

    bar = tqdm(total=math.ceil(a.trajectories / a.batch), desc=f"amed-train {a.solver}")

    def progress(done, total, loss):
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")

    pred, cfg, _ = train_predictor(model, sigmas, s, latent_shape=shape, progress=progress, log=print)
    bar.close()
    cfg.update(model_family=family, cfg=None, schedule=a.schedule, steps=a.steps, command=command)
    name = f"{family}-{a.solver}-{a.schedule}-{a.steps}steps-{'afs' if a.afs else 'noafs'}-{a.feature_mode}"
    out = Path(a.out) if a.out else WEIGHTS / f"{name}.safetensors"
    save_predictor(out, pred, cfg)
    print(f"wrote {out}  (NFE {student_nfe(len(cfg['sigmas']), a.afs, True)} with the final denoise, "
          f"{student_nfe(len(cfg['sigmas']), a.afs, False)} stopping at sigma_min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
