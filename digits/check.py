"""A fixed held-out denoising check of the shipped digits networks, recorded beside their
weights so a test can tell that the file it loads is the one that was trained.

``heldout_check(model)``: the first 8 held-out digits, noised at three fixed noise levels
(sigma = 0.5, 2, 8 for eps; 0.2, 0.5, 0.8 for flow) with seeded noise, denoised once; the
mean squared error of the x0 estimates. ``python -m seeds_samplers.digits.check --write``
stores it as ``heldout_check`` in each ``digits-<kind>.json`` record; without ``--write``
it prints the recorded and the recomputed values. A class-conditional model (digits-cond)
is checked with the digits' own labels. The patches models (``patches-eps.json``, ``patches-flow.json``) are checked
the same way on 8 held-out patches spread evenly over its held-out set (the set is ordered
by photograph, so its first 8 would be one corner of one photograph).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional

import torch

from .data import load_dataset
from .denoiser import MODELS, DigitsDenoiser, load_digits_model, model_dataset, model_file
from .weights import weights_path

__all__ = ["heldout_check", "CHECK_SIGMAS", "record_path"]

CHECK_SIGMAS = {"eps": (0.5, 2.0, 8.0), "flow": (0.2, 0.5, 0.8)}
CHECK_SEED = 1234
CHECK_COUNT = 8


def record_path(kind: str):
    return weights_path(model_file(kind)).with_suffix(".json")


def heldout_check(model: DigitsDenoiser, dataset: str = "digits") -> Dict[str, float]:
    """{"sigma=<s>": mse, ..., "mean_image": mse of predicting the mean training image
    (the best a denoiser that ignores its input can do)}, on the first held-out images of
    ``dataset``."""
    x0, y = load_dataset(dataset, "heldout")
    idx = torch.arange(CHECK_COUNT) if dataset == "digits" else \
        torch.linspace(0, x0.shape[0] - 1, CHECK_COUNT).round().long()
    x0, y = x0[idx], y[idx]
    labels = y if model.num_classes else None
    g = torch.Generator().manual_seed(CHECK_SEED)
    out: Dict[str, float] = {}
    for s in CHECK_SIGMAS[model.kind]:
        eps = torch.randn(x0.shape, generator=g)
        x = x0 + s * eps if model.kind == "eps" else (1 - s) * x0 + s * eps
        with torch.inference_mode():
            d = model(x, torch.tensor(s), labels=labels)
        out[f"sigma={s:g}"] = float(((d - x0) ** 2).mean())
    mean = load_dataset(dataset, "train")[0].mean(0, keepdim=True)
    out["mean_image"] = float(((mean - x0) ** 2).mean())
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers.digits.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="store the check in the weights' JSON records")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                    help="models to check (default: all)")
    args = ap.parse_args(argv)
    for kind in args.models:
        rec_path = record_path(kind)
        if not weights_path(model_file(kind)).is_file():
            print(f"{model_file(kind)}: no weights file, skipped")
            continue
        record = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
        check = heldout_check(load_digits_model(kind), model_dataset(kind))
        print(f"{model_file(kind)}: recorded {record.get('heldout_check')}, now {check}")
        if args.write:
            record["heldout_check"] = check
            rec_path.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
