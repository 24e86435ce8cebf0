"""``python -m seeds_samplers guidance``: the samplers under classifier-free guidance on the
class-conditional digits model (digits-cond, SD's discrete eps schedule), as users run them
with CFG.

Every menu entry of the pack and the k-diffusion anchors ``dpmpp_2m_sde``, ``dpmpp_2m``,
``euler_ancestral`` at 10 and 20 model calls on the karras schedule, at CFG 1, 3 and 6
(:class:`~seeds_samplers.digits.guidance.CFGDenoiser`: one batched cond/uncond call per
model call, as the hosts make it; at CFG 1 the hosts skip the unconditional half, so do we).
Per seed the requested digits are 0..9 in turn and every contender starts from the same
latents and the same noise seed (paired). Measured per seed, reported as mean ± standard
deviation over the seeds:

* accuracy: the fraction of samples the digit classifier (``digits/fd.py``) reads as the
  requested digit;
* KID x 10^3: the unbiased kernel distance (cubic polynomial kernel) of the classifier's
  penultimate features of the samples of each requested digit to the held-out digits of
  that class (100 per class), averaged over the 10 classes
  (:func:`~seeds_samplers.digits.fd.class_kernel_distance`). The features are divided by
  their RMS value over the held-out digits first (one fixed scalar), so that u.v / D is O(1)
  as for the Inception features KID was defined on. Its floor is the same quantity for as
  many real training digits per class (never part of the reference); the estimator is
  unbiased, so the floor's mean is ~0 and its spread is the metric's noise at this size.

Writes the page with ``--doc``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..digits.data import load_digits
from ..digits.denoiser import load_digits_model
from ..digits.fd import class_kernel_distance, features, load_classifier
from ..digits.guidance import CFGDenoiser
from .compare import Contender, kdiffusion, run_at_budget
from .contenders import menu_contenders
from .report import fmt_mean_sd

__all__ = ["CFG_SCALES", "BUDGETS", "ANCHORS", "guidance_contenders", "ClassMetrics", "measure", "markdown",
           "main"]

CFG_SCALES = (1.0, 3.0, 6.0)
BUDGETS = (10, 20)
SEEDS = (0, 1, 2)
SCHEDULE = "karras"
ANCHORS = ("dpmpp_2m_sde", "dpmpp_2m", "euler_ancestral")
DEFAULT_SAMPLES = 30  # per seed; fits the whole grid in ~15 min on one core (see the page)


def guidance_contenders() -> List[Contender]:
    """Our menu entries and the k-diffusion anchors."""
    return menu_contenders() + [kdiffusion(name) for name in ANCHORS]


def requested_labels(n: int) -> torch.Tensor:
    """0, 1, ..., 9, 0, 1, ...: balanced requested digits for ``n`` samples."""
    return torch.arange(n) % 10


class ClassMetrics:
    """Accuracy on the requested digit and per-class KID to the held-out digits."""

    def __init__(self):
        self.net = load_classifier()
        ref, self.ref_labels = load_digits("heldout")
        raw = features(self.net, ref)
        self.scale = float(raw.pow(2).mean().sqrt())  # see the module docstring
        self.ref_feats = raw / self.scale

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> Tuple[float, float]:
        """(accuracy, KID x 10^3) of ``images`` generated for ``labels``; (0, inf) if non-finite."""
        if not bool(torch.isfinite(images).all()):
            return 0.0, float("inf")
        f = features(self.net, images)
        with torch.inference_mode():
            pred = self.net.head(f.to(torch.float32)).argmax(1)
        acc = float((pred == labels).double().mean())
        return acc, 1e3 * class_kernel_distance(f / self.scale, labels, self.ref_feats, self.ref_labels)

    def floor(self, n: int, seed: int) -> Tuple[float, float]:
        """The metrics of ``n`` real training digits (``n / 10`` per class, a seeded draw)."""
        x, y = load_digits("train")
        g = torch.Generator().manual_seed(seed)
        want = requested_labels(n)
        idx = torch.cat([torch.nonzero(y == c)[torch.randperm(int((y == c).sum()), generator=g)[:int((want == c).sum())], 0]
                         for c in range(10)])
        return self(x[idx], y[idx])


def _mean_sd(vals: Sequence[float]) -> Tuple[float, float]:
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def measure(samples: int = DEFAULT_SAMPLES, seeds: Sequence[int] = SEEDS, cfg_scales: Sequence[float] = CFG_SCALES,
            budgets: Sequence[int] = BUDGETS, contenders: Optional[List[Contender]] = None,
            weights: Optional[Path] = None, log: Callable[[str], None] = print) -> Tuple[List[dict], Dict[str, Tuple[float, float]]]:
    """(cells, floor): cells {label, source, stochastic, cfg, nfe, calls, acc, acc_sd, kid,
    kid_sd} with mean and standard deviation over ``seeds``; floor {"acc", "kid"} of real digits.
    ``weights``: a digits-cond weight file other than the shipped one."""
    if samples < 20:
        raise ValueError(f"need at least 20 samples per seed (2 per digit, for KID), got {samples}")
    contenders = guidance_contenders() if contenders is None else contenders
    model = CFGDenoiser(load_digits_model("cond", weights))
    metrics = ClassMetrics()
    labels = requested_labels(samples)
    model.labels = labels
    per: Dict[tuple, List[Tuple[float, float, int]]] = {}
    for seed in seeds:
        x = model.prior_sample(samples, torch.Generator().manual_seed(seed))
        for cfg in cfg_scales:
            model.cfg_scale = cfg
            for nfe in budgets:
                for c in contenders:
                    with torch.inference_mode():
                        out, calls = run_at_budget(c, model, x, nfe, SCHEDULE, seed)
                    acc, kid = metrics(out, labels)
                    per.setdefault((c.label, c.source, c.stochastic, cfg, nfe), []).append((acc, kid, calls))
                    log(f"  seed {seed} CFG {cfg:g} NFE {nfe:2d} {c.label:24s} calls={calls:2d} "
                        f"acc={acc:.3f} KID={kid:.2f}")
    cells = []
    for (label, source, stochastic, cfg, nfe), vals in per.items():
        acc, acc_sd = _mean_sd([v[0] for v in vals])
        kid, kid_sd = _mean_sd([v[1] for v in vals])
        cells.append(dict(label=label, source=source, stochastic=stochastic, cfg=cfg, nfe=nfe, calls=vals[0][2],
                          acc=acc, acc_sd=acc_sd, kid=kid, kid_sd=kid_sd))
    floor_vals = [metrics.floor(samples, seed) for seed in seeds]
    floor = {"acc": _mean_sd([v[0] for v in floor_vals]), "kid": _mean_sd([v[1] for v in floor_vals])}
    return cells, floor


def markdown(cells: Sequence[dict], key: str, higher_is_better: bool, digits: int = 3) -> str:
    """Contenders as rows, (CFG, NFE) as columns, ``mean ± sd``; best mean per column in bold."""
    cols = sorted({(c["cfg"], c["nfe"]) for c in cells})
    rows: List[tuple] = []
    table = {}
    for c in cells:
        k = (c["label"], c["source"])
        if k not in rows:
            rows.append(k)
        table[k + (c["cfg"], c["nfe"])] = c
    pick = max if higher_is_better else min
    best = {col: pick(table[k + col][key] for k in rows if k + col in table) for col in cols}
    lines = ["| solver | source | " + " | ".join(f"CFG {cfg:g}, NFE {nfe}" for cfg, nfe in cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    for k in rows:
        txt = []
        for col in cols:
            c = table.get(k + col)
            if c is None:
                txt.append("–")
                continue
            t = fmt_mean_sd(c[key], c[key + "_sd"], digits)
            if c["calls"] != col[1]:
                t += f" ({c['calls']})"
            txt.append(f"**{t}**" if c[key] == best[col] else t)
        lines.append(f"| {k[0]} | {k[1]} | " + " | ".join(txt) + " |")
    return "\n".join(lines)


def page(cells: Sequence[dict], floor: Dict[str, Tuple[float, float]], samples: int, seeds: Sequence[int],
         seconds: float, command: str) -> str:
    intro = __doc__.split("``: ", 1)[1].split("Writes the page")[0].strip()
    return "\n".join([
        "# Sampling with classifier-free guidance (digits-cond)", "",
        f"Written by `{command}` ({samples} samples per seed, seeds {', '.join(map(str, seeds))}; "
        f"{seconds / 60:.1f} min on one core). " + intro, "",
        f"## Accuracy on the requested digit (higher is better; real digits: {fmt_mean_sd(*floor['acc'])})", "",
        markdown(cells, "acc", True), "",
        f"## KID x 10^3 to the held-out digits of the requested class (lower is better; floor, real digits: "
        f"{fmt_mean_sd(*floor['kid'])})", "",
        markdown(cells, "kid", False), ""])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers guidance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="samples per seed (balanced over digits)")
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, ...)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--doc", type=Path, default=None, help="write the page to this markdown file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = tuple(range(args.seeds))
    start = time.time()
    cells, floor = measure(args.samples, seeds)
    seconds = time.time() - start
    command = "python -m seeds_samplers guidance" + (f" --samples {args.samples}" if args.samples != DEFAULT_SAMPLES
                                                      else "") + (f" --doc {args.doc}" if args.doc else "")
    text = page(cells, floor, args.samples, seeds, seconds, command)
    print(text)
    if args.doc is not None:
        args.doc.write_text(text)
        print(f"wrote {args.doc}")
    return 0
