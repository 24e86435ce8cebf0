"""One AMED training run in a process of a ``gloo`` group, for tests/test_amed_distributed.py
(spawned by ``torch.multiprocessing``, so it lives in an importable module)."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch


def settings() -> Any:
    from seeds_samplers.amed.train import TrainSettings

    # small: seconds on one CPU thread; two epochs exercise the spooled teacher, the held-out
    # checks the best-state selection, ipndm the multistep student with its own history
    return TrainSettings(solver="ipndm", feature_mode="time", max_order=3, scale_dir=0.01, scale_time=0.2,
                         teacher_substeps=2, trajectories=16, batch=8, epochs=2, holdout=8, evals=2, lr=5e-2,
                         seed=7)


def run(world: int = 1, rank: int = 0) -> Dict[str, Any]:
    """Train on the analytic mixture (3 x 8 x 8 images); returns the loss history, the held-out
    curve and the final state."""
    from seeds_samplers.amed.train import schedule_sigmas, train_predictor
    from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    means = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    model = AnalyticDenoiser(GaussianMixture(means, [0.2, 0.3, 0.4], [0.3, 0.3, 0.4]))
    sigmas = schedule_sigmas(model, "logsnr_uniform", 4)
    pred, cfg, hist = train_predictor(model, sigmas, settings(), latent_shape=(3, 8, 8), dtype=torch.float64)
    return {"history": hist, "curve": cfg["heldout_curve"], "processes": cfg["processes"],
            "state": {k: v.clone() for k, v in pred.state_dict().items()}}


def worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = run(world, rank)
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def spawn(world: int, tmp: str) -> Optional[Dict[str, Any]]:
    import torch.multiprocessing as mp

    out = os.path.join(tmp, "rank0.pt")
    mp.spawn(worker, args=(world, os.path.join(tmp, "init"), out), nprocs=world, join=True)
    return torch.load(out, weights_only=False)
