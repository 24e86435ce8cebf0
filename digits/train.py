"""``python -m seeds_samplers train-digits [--dataset digits|patches] --kind eps|flow|cond|classifier``:
train one of the small networks on a dataset's training split (:mod:`.data`: the 4,000
training digits, or the 16x16 RGB patches of scikit-image's photographs) and write its
weights (safetensors) and a JSON record (command, seed, steps, wall time, final loss)
beside them: ``digits-<kind>`` / ``classifier`` for the digits, ``patches-<kind>`` /
``patches-classifier`` for the patches.

Training is reproducible from ``--seed`` (same steps, same data order, same noise) on
the same torch build. Denoisers: AdamW, linear warm-up then cosine decay, EMA of the
weights (the EMA is what ships).

* eps: t uniform on the 1,000 timesteps, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
  loss ||eps_hat - eps||^2 (DDPM).
* flow: t logit-normal (SD3), sigma = shift(t), x = (1 - sigma) x0 + sigma eps,
  loss ||v_hat - (eps - x0)||^2 (rectified flow).
* cond: the eps model's schedule and loss with the image's label fed to a class-conditional
  U-Net; each label is replaced by "no label" with probability ``LABEL_DROPOUT`` (0.15), so
  the one network also learns the unconditional prediction classifier-free guidance needs.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .classifier import Classifier
from .data import load_dataset
from .schedule import eps_sigma_table, flow_sigma
from .unet import UNet, UNetConfig
from .weights import WEIGHTS_DIR, save_weights

__all__ = ["train_denoiser", "train_classifier", "main", "DATASET_SHAPES", "weights_name"]

DEFAULT_STEPS = {"eps": 3500, "flow": 3500, "cond": 3500, "classifier": 1500}
LABEL_DROPOUT = 0.15  # probability that a training label is replaced by "no label" (cond)
NUM_CLASSES = 10
# dataset -> (channels, image side, classes): the networks' shapes for it
DATASET_SHAPES = {"digits": (1, 32, NUM_CLASSES), "patches": (3, 16, 6)}


def weights_name(dataset: str, kind: str) -> str:
    """File stem of the network ``kind`` trained on ``dataset`` (see the module docstring)."""
    if dataset == "digits":
        return "classifier" if kind == "classifier" else f"digits-{kind}"
    return f"{dataset}-{kind}"


def _dataset_config(dataset: str, config: Optional[UNetConfig]) -> UNetConfig:
    """``config`` (default: the digits U-Net's widths) with the dataset's channels and side."""
    channels, side, _ = DATASET_SHAPES[dataset]
    return replace(config or UNetConfig(), in_channels=channels, image_size=side)


def _lr(step: int, steps: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def _batches(n: int, batch: int, g: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=g)
        for k in range(0, n - batch + 1, batch):
            yield perm[k:k + batch]


def drop_labels(labels: torch.Tensor, null_label: int, p: float, g: torch.Generator) -> torch.Tensor:
    """``labels`` with each entry replaced by ``null_label`` with probability ``p``."""
    drop = torch.rand(labels.shape, generator=g) < p
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def denoiser_loss(net: UNet, kind: str, x0: torch.Tensor, g: torch.Generator,
                  abar: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One Monte-Carlo estimate of the training loss on a batch of clean digits.

    ``labels`` (kind ``"cond"``): the batch's digit labels, dropped to "no label" here."""
    b = x0.shape[0]
    eps = torch.randn(x0.shape, generator=g)
    if kind in ("eps", "cond"):
        t = torch.randint(0, 1000, (b,), generator=g)
        a = abar[t].float().view(b, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        y = drop_labels(labels, net.null_label, LABEL_DROPOUT, g) if kind == "cond" else None
        return F.mse_loss(net(xt, t.float(), y), eps)
    u = torch.randn((b,), generator=g)
    sigma = flow_sigma(torch.sigmoid(u)).float()
    s = sigma.view(b, 1, 1, 1)
    xt = (1 - s) * x0 + s * eps
    return F.mse_loss(net(xt, 1000.0 * sigma), eps - x0)


def train_denoiser(kind: str, steps: int, seed: int = 0, batch: int = 64, lr: float = 1e-3,
                   ema_decay: float = 0.999, config: Optional[UNetConfig] = None,
                   progress: bool = True, dataset: str = "digits"):
    """Train a denoiser on ``dataset``; returns (EMA network, mean loss of the last 10% of
    steps). ``config``: the U-Net's widths (default: the digits U-Net's); its channels and
    side are the dataset's."""
    if kind not in ("eps", "flow", "cond"):
        raise ValueError(f"kind must be 'eps', 'flow' or 'cond', got {kind!r}")
    config = _dataset_config(dataset, config)
    if kind == "cond" and not config.num_classes:
        config = replace(config, num_classes=DATASET_SHAPES[dataset][2])
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = load_dataset(dataset, "train")
    net = UNet(config)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    abar = 1.0 / (1.0 + eps_sigma_table() ** 2)
    losses: List[float] = []
    bar = tqdm(range(steps), desc=f"train {weights_name(dataset, kind)}", disable=not progress, mininterval=5)
    it = _batches(len(x), batch, g)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr)
        idx = next(it)
        loss = denoiser_loss(net, kind, x[idx], g, abar, y[idx] if kind == "cond" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - d)
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    tail = losses[-max(1, steps // 10):]
    return ema, sum(tail) / len(tail)


def train_classifier(steps: int, seed: int = 0, batch: int = 128, lr: float = 2e-3,
                     progress: bool = True, dataset: str = "digits"):
    """Train the feature classifier of ``dataset``; returns (network, held-out accuracy)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = load_dataset(dataset, "train")
    channels, side, classes = DATASET_SHAPES[dataset]
    net = Classifier(channels, side, classes)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    it = _batches(len(x), batch, g)
    for step in tqdm(range(steps), desc="train classifier", disable=not progress, mininterval=5):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup=50)
        idx = next(it)
        xb = x[idx]
        # small random shifts (+-2 px) so the features see more than the 4,000 digits
        dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
        xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(net(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    xh, yh = load_dataset(dataset, "heldout")
    with torch.no_grad():
        acc = float((net(xh).argmax(1) == yh).float().mean())
    return net, acc


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers train-digits", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", required=True, choices=("eps", "flow", "cond", "classifier"))
    ap.add_argument("--dataset", default="digits", choices=tuple(DATASET_SHAPES),
                    help="training data (default: digits)")
    ap.add_argument("--steps", type=int, default=None,
                    help="optimiser steps (default: eps/flow/cond 3500, classifier 1500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=None, help="weights file (default: the shipped one)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or DEFAULT_STEPS[args.kind]
    out = args.out or WEIGHTS_DIR / f"{weights_name(args.dataset, args.kind)}.safetensors"
    start = time.time()
    record = {"command": "python -m seeds_samplers train-digits " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
              "dataset": args.dataset, "seed": args.seed, "steps": steps, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.kind == "classifier":
        net, acc = train_classifier(steps, args.seed, dataset=args.dataset)
        record["heldout_accuracy"] = acc
        # the digit classifier's file keeps its empty config (the constructor's defaults)
        save_weights(out, net.state_dict(), "classifier", {} if args.dataset == "digits" else net.config)
        print(f"held-out accuracy {acc:.4f}")
    else:
        net, loss = train_denoiser(args.kind, steps, args.seed, dataset=args.dataset)
        record["final_loss"] = loss
        if args.kind == "cond":
            record["label_dropout"] = LABEL_DROPOUT
        save_weights(out, net.state_dict(), args.kind, net.config.to_dict())
        print(f"final loss (mean of the last 10% of steps) {loss:.5f}")
    record["train_seconds"] = round(time.time() - start, 1)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json').name} in {record['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
