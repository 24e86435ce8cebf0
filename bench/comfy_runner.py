"""Run ComfyUI's own samplers on a benchmark test model, inside ComfyUI's Python.

``python -m seeds_samplers.bench.comfy_runner IN.npz OUT.npz`` with ``COMFYUI_ROOT`` set:
the parent benchmark (:mod:`.comfy`) writes the test model's description, the initial
latents and the schedules into ``IN.npz``; this process rebuilds the model, runs each
job with the checkout's ``comfy.k_diffusion.sampling.sample_<name>`` and writes the samples
and the counted model calls into ``OUT.npz``. Only arrays cross the process boundary.

The model is called as ComfyUI's samplers call theirs (``model(x, sigma * s_in)``); the
samplers that read the model's noise-level description through
``model.inner_model.model_patcher.get_model_object("model_sampling")`` (or the older
``model.inner_model.inner_model.model_sampling``) get the checkout's own
``ModelSamplingDiscrete`` (SD's scaled-linear table, EPS) or ``ModelSamplingDiscreteFlow``
(with the model's shift, CONST) object.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch


class _NS:
    def __init__(self, **kw: Any):
        self.__dict__.update(kw)


def import_comfy(root: str) -> Any:
    """Put the checkout first on sys.path, select ComfyUI's CPU mode (as ``main.py --cpu``)
    and return its ``comfy.k_diffusion.sampling`` module."""
    sys.path.insert(0, str(Path(root).resolve()))
    from comfy.cli_args import args

    args.cpu = True
    import comfy.k_diffusion.sampling as ks

    return ks


def host_model_sampling(kind: str, shift: float) -> Any:
    """The checkout's model_sampling object for an SD-style eps model or a shifted flow model."""
    import comfy.model_sampling as ms

    if kind == "flow":
        cls = type("ModelSampling", (ms.ModelSamplingDiscreteFlow, ms.CONST), {})
        obj = cls(None)
        obj.set_parameters(shift=shift, multiplier=1000)
    else:
        cls = type("ModelSampling", (ms.ModelSamplingDiscrete, ms.EPS), {})
        obj = cls(None)
    return obj


class HostModel:
    """What ComfyUI's samplers receive: a callable with the model-sampling path."""

    def __init__(self, denoiser: Any, model_sampling: Any):
        self.denoiser = denoiser
        self.calls = 0
        patcher = _NS(get_model_object=lambda name: model_sampling)
        self.inner_model = _NS(model_patcher=patcher, inner_model=_NS(model_sampling=model_sampling))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        return self.denoiser(x, sigma)


def build_denoiser(meta: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> Any:
    if meta["model"] == "digits":
        from seeds_samplers.digits.denoiser import load_digits_model

        model = load_digits_model(meta["digits_kind"], meta.get("weights"))
        model.net.to(memory_format=torch.channels_last)
        if meta.get("cfg_scale") is not None:  # a guided test model (bench/models.py GUIDED)
            from seeds_samplers.digits.guidance import CFGDenoiser

            return CFGDenoiser(model, meta["cfg_scale"], labels="balanced")
        return model
    from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture

    mix = GaussianMixture(torch.from_numpy(arrays["means"]), arrays["stds"].tolist(), arrays["weights"].tolist())
    return AnalyticDenoiser(mix, kind=meta["gmm_kind"], shift=meta["shift"])


def main(argv: Any = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        print("usage: python -m seeds_samplers.bench.comfy_runner IN.npz OUT.npz", file=sys.stderr)
        return 2
    root = os.environ.get("COMFYUI_ROOT")
    if not root or not (Path(root) / "comfy" / "k_diffusion" / "sampling.py").is_file():
        print(f"COMFYUI_ROOT must name a ComfyUI checkout (got {root!r})", file=sys.stderr)
        return 2
    threads = os.environ.get("SEEDS_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    ks = import_comfy(root)
    from seeds_samplers.bench.compare import NOISES  # the noises the parent's own samplers draw

    data = dict(np.load(argv[0], allow_pickle=False))
    meta = json.loads(str(data.pop("meta")))
    denoiser = build_denoiser(meta, data)
    host = HostModel(denoiser, host_model_sampling(meta["kind"], meta["shift"]))
    out: Dict[str, np.ndarray] = {}
    for j, job in enumerate(meta["jobs"]):
        fn = getattr(ks, "sample_" + job["sampler"])
        x = torch.from_numpy(data[job["x"]])
        sigmas = torch.from_numpy(data[job["sigmas"]]).to(x.dtype)
        kw = dict(job.get("params", {}))
        if job["stochastic"]:  # the parent's noise of the job's kind (plain batched, or one Brownian path per sample)
            kw["noise_sampler"] = NOISES[job.get("noise", "gaussian")](x, job["noise_seed"])
        before = host.calls
        with torch.inference_mode():
            y = fn(host, x.clone(), sigmas, extra_args={"seed": job["noise_seed"]}, disable=True, **kw)
        out[f"out_{j}"] = y.detach().cpu().numpy()
        out[f"calls_{j}"] = np.array(host.calls - before)
    np.savez(argv[1], **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
