"""ComfyUI's own samplers as benchmark anchors, run inside the checkout's Python.

Set ``COMFYUI_ROOT`` to a ComfyUI checkout and, when ComfyUI lives in another virtual
environment, ``COMFYUI_PYTHON`` to that environment's ``python`` (it needs torch, the
checkout's requirements and this package installed, e.g. ``pip install -e .``). The
benchmark writes the test model, latents and schedules to an ``.npz`` file, runs
:mod:`.comfy_runner` in a subprocess and reads the samples back: arrays only, no host
code in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from .compare import Contender

__all__ = ["COMFY_SAMPLERS", "comfy_root", "comfy_python", "comfy_contenders", "run_comfy_jobs"]

# ComfyUI sampler name: (model calls per step, stochastic). Every one ends with x = D
# (one call) on the interval to sigma = 0.
COMFY_SAMPLERS: Dict[str, Tuple[int, bool]] = {
    "seeds_2": (2, True), "seeds_3": (3, True), "er_sde": (1, True), "sa_solver": (1, True),
    # ComfyUI's DPM-Solver++(2M) SDE works in the model's own half-log-SNR (flow models too),
    # unlike the k-diffusion package's, which assumes a VE model
    "dpmpp_2m_sde": (1, True), "dpmpp_2m_sde_heun": (1, True),
    "res_multistep": (1, False), "deis": (1, False), "ipndm": (1, False),
}


def comfy_root() -> Optional[str]:
    """``COMFYUI_ROOT`` if it names a ComfyUI checkout, else None."""
    root = os.environ.get("COMFYUI_ROOT")
    if root and (Path(root) / "comfy" / "k_diffusion" / "sampling.py").is_file():
        return root
    return None


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON") or sys.executable


def _unavailable(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("ComfyUI contenders run through run_comfy_jobs, not in this process")


def comfy_contenders(names=tuple(COMFY_SAMPLERS)) -> List[Contender]:
    out = []
    for name in names:
        stages, stochastic = COMFY_SAMPLERS[name]
        out.append(Contender(name, _unavailable, {"comfy": name}, stages=stages, stochastic=stochastic,
                             source="ComfyUI"))
    return out


def run_comfy_jobs(model: Any, jobs: List[Dict[str, Any]], timeout: float = 7200.0) -> List[Tuple[torch.Tensor, int]]:
    """Run ``jobs`` ({sampler, x, sigmas, noise_seed, stochastic, optional noise: "gaussian" or
    "path", :data:`.compare.NOISES`}) on ``model`` (a
    :class:`~.models.TestModel`) with the checkout's samplers; returns (samples, calls) per job."""
    root = comfy_root()
    if root is None:
        raise RuntimeError("COMFYUI_ROOT does not name a ComfyUI checkout")
    arrays: Dict[str, np.ndarray] = {k: np.asarray(v) for k, v in model.payload.get("arrays", {}).items()}
    meta = dict(model.payload["meta"])
    meta["jobs"] = []
    for j, job in enumerate(jobs):
        arrays[f"x_{j}"] = job["x"].detach().cpu().numpy()
        arrays[f"sigmas_{j}"] = job["sigmas"].detach().cpu().to(torch.float64).numpy()
        meta["jobs"].append(dict(sampler=job["sampler"], x=f"x_{j}", sigmas=f"sigmas_{j}",
                                 noise_seed=int(job["noise_seed"]), stochastic=bool(job["stochastic"]),
                                 noise=job.get("noise", "gaussian"), params=dict(job.get("params", {}))))
    with tempfile.TemporaryDirectory(prefix="seeds_comfy_") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, meta=np.array(json.dumps(meta)), **arrays)
        env = dict(os.environ, COMFYUI_ROOT=root, SEEDS_BENCH_THREADS=str(torch.get_num_threads()))
        proc = subprocess.run([comfy_python(), "-m", "seeds_samplers.bench.comfy_runner", str(src), str(dst)],
                              env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"ComfyUI runner failed ({comfy_python()}):\n{proc.stderr[-3000:]}")
        res = np.load(dst)
        return [(torch.from_numpy(res[f"out_{j}"]), int(res[f"calls_{j}"])) for j in range(len(jobs))]
