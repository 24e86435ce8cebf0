"""``python -m seeds_samplers amed-train``: train an AMED predictor by distillation on one of
the test models (the digits U-Nets or the exact analytic mixture), or convert an official
predictor (``--convert FILE``). The training itself is :mod:`seeds_samplers.amed.train`;
this command sits in ``bench/`` because its models do: ``amed/`` serves the hosts' nodes
and never imports ``bench/`` or ``digits/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import torch

from ..amed.storage import FEATURE_MODES, save_predictor
from ..amed.train import (LOSSES, LR_SCHEDULES, RECIPES, TEACHER_SUBSTEPS, TrainSettings, loss_help, not_improved_message,
                          schedule_sigmas, student_nfe, tqdm_progress, train_predictor)
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
    p = argparse.ArgumentParser(
        prog="python -m seeds_samplers amed-train",
        description="Train an AMED predictor by distillation, or convert an official one. Unset options take the "
                    "official recipe of the student (amed.train.RECIPES). Runs under torchrun "
                    "(--nproc_per_node N, gloo on CPU): the batches are split over the processes, rank 0 writes.")
    p.add_argument("--model", default="digits-eps", help="digits-eps | digits-flow | gmm-vp | gmm-flow")
    p.add_argument("--schedule", default=None, help="uniform or a registered schedule id (default: the recipe's)")
    p.add_argument("--steps", type=int, default=4, help="sampler steps (sigma intervals incl. the final one to 0)")
    p.add_argument("--solver", default="amed", choices=AMED_SOLVERS, help="amed = AMED-Solver; else the plugin base")
    p.add_argument("--no-afs", dest="afs", action="store_false", default=None, help="no analytical first step")
    p.add_argument("--feature-mode", default="bottleneck", choices=FEATURE_MODES)
    p.add_argument("--scale-dir", type=float, default=None, help="direction-scale range (recipe: 0.01)")
    p.add_argument("--scale-time", type=float, default=None, help="time-scale range (recipe: 0.2 ipndm, else 0)")
    p.add_argument("--max-order", type=int, default=None, help="ipndm/deis 1-4 (recipe: ipndm 4, deis 3), "
                                                               "dpmpp_2m 1-3 (recipe 2)")
    p.add_argument("--prediction", default="data", choices=("data", "noise"))
    p.add_argument("--teacher-substeps", type=int, default=TEACHER_SUBSTEPS)
    p.add_argument("--trajectories", type=int, default=512)
    p.add_argument("--batch", type=int, default=16, help="trajectories per optimiser round (over all processes)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the trajectories (teacher computed once)")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--lr-schedule", default="cosine", choices=LR_SCHEDULES)
    p.add_argument("--loss", default=TrainSettings().loss, choices=LOSSES,
                   help="weighting of the per-interval state errors, in training and in the held-out selection. "
                        + loss_help().replace("%", "%%"))
    p.add_argument("--holdout", type=int, default=64, help="held-out trajectories that pick the best predictor")
    p.add_argument("--evals", type=int, default=8, help="held-out evaluations during training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-unimproved", action="store_true",
                   help="write the file even when no trained state beat the untrained predictor (marked improved=false)")
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
    rank = _start_processes()
    model, shape, family = load_model(a.model)
    s = TrainSettings.recipe(a.solver, afs=a.afs, feature_mode=a.feature_mode, scale_dir=a.scale_dir,
                             scale_time=a.scale_time, max_order=a.max_order, prediction=a.prediction,
                             teacher_substeps=a.teacher_substeps, trajectories=a.trajectories, batch=a.batch,
                             epochs=a.epochs, lr=a.lr, lr_schedule=a.lr_schedule, holdout=a.holdout,
                             evals=a.evals, seed=a.seed, loss=a.loss)
    schedule = a.schedule or RECIPES[a.solver]["schedule"]
    sigmas = schedule_sigmas(model, schedule, a.steps)
    pred, cfg, _ = train_predictor(model, sigmas, s, latent_shape=shape, log=print,
                                   progress=tqdm_progress(f"amed-train {a.solver}") if rank == 0 else None)
    if rank != 0:
        return 0
    cfg.update(model_family=family, cfg=None, schedule=schedule, steps=a.steps, command=command)
    name = f"{family}-{a.solver}-{schedule}-{a.steps}steps-{'afs' if s.afs else 'noafs'}-{a.feature_mode}"
    out = Path(a.out) if a.out else WEIGHTS / f"{name}.safetensors"
    if not cfg["improved"]:
        if not a.keep_unimproved:
            print(f"NOT WRITTEN {out}: {not_improved_message(cfg['loss_before'], min(l for _, l in cfg['heldout_curve'][1:]))}"
                  f" (--keep-unimproved writes it anyway, marked improved=false)")
            return 3
        print(f"WARNING: writing an unimproved predictor (improved=false in its metadata)")
    save_predictor(out, pred, cfg)
    print(f"wrote {out}  (held-out loss {cfg['loss_before']:.5g} -> {cfg['loss_after']:.5g}; "
          f"NFE {student_nfe(len(cfg['sigmas']), s.afs, True)} with the final denoise, "
          f"{student_nfe(len(cfg['sigmas']), s.afs, False)} stopping at sigma_min)")
    return 0


def _start_processes() -> int:
    """Under torchrun (WORLD_SIZE > 1): join the process group (gloo: works on CPU; the
    predictor is tiny, its gradients are all that is exchanged). Returns this rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank()


if __name__ == "__main__":
    sys.exit(main())
