"""``python -m seeds_samplers guidance``: CFG++ against classifier-free guidance on the
class-conditional digits model (digits-cond, SD's discrete eps schedule), as users run them.

The CFG++ forms (``cfg_pp=True``, docs/algorithms.md, CFG++) of SEEDS-1/2/3, ER-SDE, DEIS and
iPNDM at their menu entries' settings, at CFG++ scales 0.2, 0.35, 0.5, 0.75 and
1.0 (``--cfg-pp-scales`` sets others; the tables list the measured ones), against two kinds of
anchors: k-diffusion's ``dpmpp_2m``, ``dpmpp_2m_sde`` and ``euler`` with plain CFG at scales
1, 2, 3 and 8, and, when ``COMFYUI_ROOT`` names a ComfyUI checkout, ComfyUI's own
``euler_cfg_pp`` and ``dpmpp_2m_cfg_pp`` at the CFG++ scales (imported from the checkout,
given the unconditional prediction through the post-CFG hook they install). At 8, 10 and 20
model calls on the karras schedule. The guided model is
:class:`~seeds_samplers.digits.guidance.CFGDenoiser` (one batched cond/uncond call per model
call, as the hosts make it; the plain-CFG anchors skip the unconditional half at scale 1 as
the hosts do, the CFG++ runs keep it, as ComfyUI's cfg_pp samplers disable that optimisation).
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
  (No per-class FD: at a few samples per class the Frechet distance of the features is
  dominated by its sample-size bias; KID is its unbiased counterpart.)

Contenders pass (``--contender-samples``, default 150 per seed): the screening grid above
at 40 samples ranks the cells; then, per budget, only the contenders are measured again at
the larger count: the best 2 k-diffusion anchors at the anchors' best accuracy (lowest
screening KID among their cells at that accuracy), ComfyUI's two cfg_pp samplers at their
best scale and our best 2 CFG++ entries, chosen the same way, twice: at the screening's face
value and counting a cell within one misread sample (in all the seeds' screening samples) of
the anchors' best accuracy as at it (the screening cannot tell them apart); the union of the
two choices is measured, so that the choice does not decide the verdict. They run from fresh latents
and noise (seed + 10,000, in chunks of 50 samples), so the draws that picked them do not
also judge them, and paired: every contender of a seed starts from the same latents with the
same noise. The verdict takes the difference ours minus anchor per seed, then its mean ± sd
over the seeds and the one-sided t minimum detectable difference (MDD) at the seed count
(:func:`~seeds_samplers.bench.decide.mdd`): met when the mean difference is below -MDD
against every anchor that reaches the anchors' best accuracy (an entry reaches it unless its
paired accuracy difference to that anchor is a called loss), met on the mean but not resolved
when it is below 0 only, missed otherwise; the KID floor is given at that sample count.

Writes the page with ``--doc``; ``--cache FILE`` keeps every measured cell (JSON lines), so
an interrupted run resumes and the page can be rewritten from the same measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..digits.data import load_digits
from ..digits.denoiser import load_digits_model
from ..digits.fd import DigitsFD, class_kernel_distance, features
from ..digits.guidance import CFGDenoiser, balanced_labels
from ..samplers import registry
from .compare import Contender, kdiffusion, ours, run_at_budget
from .decide import called, mdd
from .grid import mean_sd
from .report import fmt_mean_sd

__all__ = ["BASE_SCALES", "CFG_PP_SCALES", "BUDGETS", "BASE_ANCHORS", "COMFY_CFG_PP", "CFG_PP_IDS",
           "guidance_contenders", "ComfyCFGModel", "ClassMetrics", "measure", "markdown", "verdict",
           "select_contenders", "contender_plan", "paired", "decided_verdict", "decided_markdown", "main"]

BASE_SCALES = (1.0, 2.0, 3.0, 8.0)
CFG_PP_SCALES = (0.2, 0.35, 0.5, 0.75, 1.0)  # the issue's range, 0.2-1.0
BUDGETS = (8, 10, 20)
SEEDS = (0, 1, 2)
SCHEDULE = "karras"
BASE_ANCHORS = ("dpmpp_2m", "dpmpp_2m_sde", "euler")
COMFY_CFG_PP = ("euler_cfg_pp", "dpmpp_2m_cfg_pp")
CFG_PP_IDS = ("seeds_1", "seeds_2", "seeds_3", "er_sde", "deis", "ipndm")
DEFAULT_SAMPLES = 40  # per seed (4 per digit): the grid in ~1 h on one niced core of a busy 2-core machine
CONTENDER_SAMPLES = 150  # per seed in the contenders pass: 6 contenders x 3 budgets x 3 seeds, ~0.6 M
# sample-calls (cond + uncond), ~27 min on one niced core of the busy machine
CHUNK = 50  # samples per sampler run: measured 3.5 CPU-ms per sample-call at 40, 4.8 at 200 (one thread)
CONTENDER_STREAM = 10_000  # added to the seed for the contenders' latents and noise: fresh draws
NOISE_STRIDE = 100  # chunk k of a seed draws its noise from seed + stream + NOISE_STRIDE * k
KEEP = 2  # k-diffusion anchors and our entries kept per budget for the contenders pass


class ComfyCFGModel:
    """What ComfyUI's samplers call: the guided model with the attributes they read
    (``inner_model.model_patcher.get_model_object("model_sampling")``) and ComfyUI's
    post-CFG hook: each function in ``model_options["sampler_post_cfg_function"]`` gets the
    guided, conditional and unconditional predictions after every call."""

    def __init__(self, denoiser: CFGDenoiser, model_sampling: Any):
        from .comfy_runner import _NS

        self.denoiser = denoiser
        patcher = _NS(get_model_object=lambda name: model_sampling)
        self.inner_model = _NS(model_patcher=patcher, inner_model=_NS(model_sampling=model_sampling))

    @property
    def calls(self) -> int:
        return self.denoiser.calls

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: Optional[dict] = None,
                 **kwargs: Any) -> torch.Tensor:
        d = self.denoiser(x, sigma, **kwargs)
        for fn in (model_options or {}).get("sampler_post_cfg_function", []):
            d = fn({"denoised": d, "cond_denoised": self.denoiser.last_cond,
                    "uncond_denoised": self.denoiser.last_uncond, "cond_scale": self.denoiser.cfg_scale,
                    "sigma": sigma, "input": x, "model": self, "model_options": model_options})
        return d


def comfy_anchors() -> List[Contender]:
    """ComfyUI's cfg_pp samplers, imported from ``COMFYUI_ROOT`` (none without it)."""
    from .comfy import comfy_root

    root = comfy_root()
    if root is None:
        return []
    from .comfy_runner import import_comfy

    ks = import_comfy(root)
    return [Contender(name, getattr(ks, "sample_" + name), {}, source="ComfyUI") for name in COMFY_CFG_PP]


def guidance_contenders() -> List[Tuple[Contender, bool]]:
    """(contender, is CFG++): the k-diffusion bases, ComfyUI's cfg_pp samplers, our CFG++ forms."""
    out = [(kdiffusion(name), False) for name in BASE_ANCHORS]
    out += [(c, True) for c in comfy_anchors()]
    out += [(ours(sid, f"{registry.get(sid).title} CFG++", cfg_pp=True), True) for sid in CFG_PP_IDS]
    return out


class ClassMetrics:
    """Accuracy on the requested digit and per-class KID to the held-out digits."""

    def __init__(self):
        fd = DigitsFD()  # the held-out digits' features, scaled for KID (see the module docstring)
        self.net, self.scale, self.ref_feats = fd.net, fd.kid_scale, fd.reference_features
        self.ref_labels = load_digits("heldout")[1]

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
        want = balanced_labels(n)
        idx = torch.cat([torch.nonzero(y == c)[torch.randperm(int((y == c).sum()), generator=g)[:int((want == c).sum())], 0]
                         for c in range(10)])
        return self(x[idx], y[idx])


def _key(label: str, cfg: float, nfe: int, seed: int, samples: int, stream: int = 0) -> str:
    return f"{label}|{cfg:g}|{nfe}|{seed}|{samples}" + (f"|s{stream}" if stream else "")


def _chunk(samples: int) -> int:
    """Samples per sampler run: all of them up to :data:`CHUNK`, else equal chunks of
    :data:`CHUNK` (each balanced over the digits)."""
    size = min(samples, CHUNK)
    if samples % size or size % 10:
        raise ValueError(f"samples per seed must be a multiple of 10 up to {CHUNK} and of {CHUNK} above, "
                         f"got {samples}")
    return size


def measure(samples: int = DEFAULT_SAMPLES, seeds: Sequence[int] = SEEDS, budgets: Sequence[int] = BUDGETS,
            base_scales: Sequence[float] = BASE_SCALES, cfg_pp_scales: Sequence[float] = CFG_PP_SCALES,
            contenders: Optional[List[Tuple[Contender, bool]]] = None, weights: Optional[Path] = None,
            cache: Optional[Path] = None, log: Callable[[str], None] = print,
            counts: Optional[Dict[str, int]] = None, plan: Optional[Dict[int, List[Tuple[Contender, bool, float]]]] = None,
            stream: int = 0) -> Tuple[List[dict], Dict[str, Tuple[float, float]]]:
    """(cells, floor): cells {label, source, cfg_pp, cfg, nfe, calls, acc, acc_sd, kid, kid_sd,
    accs, kids} with mean and standard deviation over ``seeds`` (``accs``/``kids``: the
    per-seed values in the order of ``seeds``); floor {"acc", "kid"} of real digits.
    ``weights``: a digits-cond weight file other than the shipped one; ``cache``: a JSON-lines
    file of measured cells, read first and appended to; ``counts`` (if given) gets how many
    (contender, scale, budget, seed) runs were ``"measured"`` now and read from the ``"cached"`` file.
    ``plan``: {budget: [(contender, is CFG++, scale)]} to measure instead of the grid of
    ``contenders`` x scales x ``budgets``; ``stream``: added to each seed for the latents and
    the noise (0: the screening's draws)."""
    if samples < 20:
        raise ValueError(f"need at least 20 samples per seed (2 per digit, for KID), got {samples}")
    size = _chunk(samples)
    if plan is None:
        contenders = guidance_contenders() if contenders is None else contenders
        plan = {nfe: [(c, pp, cfg) for c, pp in contenders for cfg in (cfg_pp_scales if pp else base_scales)]
                for nfe in budgets}
    net = load_digits_model("cond", weights)
    net.net.to(memory_format=torch.channels_last)  # ~30 % faster on the CPU, same outputs to round-off
    labels = balanced_labels(samples)
    plain = CFGDenoiser(net, labels=balanced_labels(size))
    keep = CFGDenoiser(net, labels=balanced_labels(size), keep_uncond=True)  # CFG++: the uncond half at every scale
    comfy_model = None
    if any(c.source == "ComfyUI" for jobs in plan.values() for c, _, _ in jobs):
        from .comfy_runner import host_model_sampling

        comfy_model = ComfyCFGModel(keep, host_model_sampling("eps", 1.0))
    metrics = ClassMetrics()
    done: Dict[str, Tuple[float, float, int]] = {}
    if cache is not None and cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[r["key"]] = (r["acc"], r["kid"], r["calls"])
    per: Dict[tuple, List[Tuple[float, float, int]]] = {}
    for seed in seeds:
        x = net.prior_sample(samples, torch.Generator().manual_seed(seed + stream))
        for nfe, jobs in plan.items():
            for c, pp, cfg in jobs:
                model = comfy_model if c.source == "ComfyUI" else keep if pp else plain
                key = _key(c.label, cfg, nfe, seed, samples, stream)
                if counts is not None:
                    counts["cached" if key in done else "measured"] = counts.get(
                        "cached" if key in done else "measured", 0) + 1
                if key not in done:
                    (keep if pp else plain).cfg_scale = cfg
                    parts = []
                    with torch.inference_mode():
                        for k in range(samples // size):
                            out, calls = run_at_budget(c, model, x[k * size:(k + 1) * size], nfe, SCHEDULE,
                                                       seed + stream + NOISE_STRIDE * k)
                            parts.append(out)
                    acc, kid = metrics(torch.cat(parts), labels)
                    done[key] = (acc, kid, calls)
                    if cache is not None:
                        with cache.open("a") as f:
                            f.write(json.dumps(dict(key=key, acc=acc, kid=kid, calls=calls)) + "\n")
                    log(f"  seed {seed} NFE {nfe:2d} {c.label:24s} scale {cfg:g} samples {samples} calls={calls:2d} "
                        f"acc={acc:.3f} KID={kid:.2f}")
                per.setdefault((c.label, c.source, pp, cfg, nfe), []).append(done[key])
    cells = []
    for (label, source, pp, cfg, nfe), vals in per.items():
        acc, acc_sd = mean_sd([v[0] for v in vals])
        kid, kid_sd = mean_sd([v[1] for v in vals])
        cells.append(dict(label=label, source=source, cfg_pp=pp, cfg=cfg, nfe=nfe, calls=vals[0][2],
                          acc=acc, acc_sd=acc_sd, kid=kid, kid_sd=kid_sd,
                          accs=[v[0] for v in vals], kids=[v[1] for v in vals]))
    floor_vals = [metrics.floor(samples, seed + stream) for seed in seeds]
    floor = {"acc": mean_sd([v[0] for v in floor_vals]), "kid": mean_sd([v[1] for v in floor_vals])}
    return cells, floor


def _best_cell(cells: Sequence[dict], threshold: float) -> dict:
    """One row's cell for the target: the lowest KID among its cells at accuracy >= ``threshold``,
    else its highest accuracy (then lowest KID)."""
    reach = [c for c in cells if c["acc"] >= threshold]
    if reach:
        return min(reach, key=lambda c: c["kid"])
    return min(cells, key=lambda c: (-c["acc"], c["kid"]))


def select_contenders(cells: Sequence[dict], nfe: int, keep: int = KEEP, slack: float = 0.0) -> List[dict]:
    """The screening cells re-measured at one budget: the best ``keep`` k-diffusion anchors and
    our best ``keep`` CFG++ entries (each row at :func:`_best_cell` of the anchors' best
    accuracy; rows reaching it by lowest KID first, then by accuracy), and every ComfyUI
    cfg_pp row at its best scale. A cell within ``slack`` of the anchors' best accuracy counts
    as reaching it (the screening's resolution, one misread sample in all the seeds' samples:
    a cell it cannot tell from the best is not passed over; the contenders pass then tests
    the accuracy on paired differences)."""
    mine = [c for c in cells if c["nfe"] == nfe]
    anchors = [c for c in mine if c["source"] != "ours"]
    if not anchors:
        return []
    threshold = max(c["acc"] for c in anchors) - slack - 1e-12
    rows: Dict[Tuple[str, str], List[dict]] = {}
    for c in mine:
        rows.setdefault((c["label"], c["source"]), []).append(c)
    best = [_best_cell(v, threshold) for v in rows.values()]

    def rank(c: dict) -> tuple:
        return (0, c["kid"], 0.0) if c["acc"] >= threshold else (1, -c["acc"], c["kid"])

    base = sorted((c for c in best if c["source"] != "ours" and not c["cfg_pp"]), key=rank)[:keep]
    comfy = [c for c in best if c["source"] == "ComfyUI"]
    ours_pp = sorted((c for c in best if c["source"] == "ours" and c["cfg_pp"]), key=rank)[:keep]
    return base + comfy + ours_pp


def contender_plan(cells: Sequence[dict], pool: Sequence[Tuple[Contender, bool]],
                   budgets: Sequence[int] = BUDGETS, slack: float = 0.0) -> Dict[int, List[Tuple[Contender, bool, float]]]:
    """:func:`select_contenders` as a :func:`measure` plan over the contenders ``pool``: the
    union of the choice at the screening's face value and within ``slack`` of it (the two
    differ where the screening cannot rank the cells; measuring both keeps the choice from
    deciding the verdict)."""
    by = {(c.label, c.source): (c, pp) for c, pp in pool}
    plan: Dict[int, List[Tuple[Contender, bool, float]]] = {}
    for nfe in budgets:
        chosen = {}
        for c in select_contenders(cells, nfe) + select_contenders(cells, nfe, slack=slack):
            chosen.setdefault((c["label"], c["source"], c["cfg"]), by[(c["label"], c["source"])] + (c["cfg"],))
        plan[nfe] = list(chosen.values())
    return plan


def markdown(cells: Sequence[dict], nfe: int) -> str:
    """One budget: contenders as rows, guidance scales as columns, ``accuracy / KID`` as
    mean ± sd; per row the best KID among the cells at the row's best accuracy in bold."""
    mine = [c for c in cells if c["nfe"] == nfe]
    rows: List[tuple] = []
    for c in mine:
        if (c["label"], c["source"]) not in rows:
            rows.append((c["label"], c["source"]))
    lines = []
    for pp, scales_title in ((False, "CFG scale"), (True, "CFG++ scale")):
        group = [r for r in rows if any(c["cfg_pp"] == pp for c in mine if (c["label"], c["source"]) == r)]
        if not group:
            continue
        scales = sorted({c["cfg"] for c in mine if c["cfg_pp"] == pp})
        lines += ["", "| solver | source | " + " | ".join(f"{scales_title} {s:g}: accuracy / KID" for s in scales) + " |",
                  "|---|---|" + "---:|" * len(scales)]
        for r in group:
            by = {c["cfg"]: c for c in mine if (c["label"], c["source"]) == r}
            top = max(c["acc"] for c in by.values())
            star = min((c for c in by.values() if c["acc"] == top), key=lambda c: c["kid"])
            txt = []
            for s in scales:
                c = by.get(s)
                if c is None:
                    txt.append("–")
                    continue
                t = f"{fmt_mean_sd(c['acc'], c['acc_sd'], 3)} / {fmt_mean_sd(c['kid'], c['kid_sd'], 3)}"
                if c["calls"] != nfe:
                    t += f" ({c['calls']} calls)"
                txt.append(f"**{t}**" if c is star else t)
            lines.append(f"| {r[0]} | {r[1]} | " + " | ".join(txt) + " |")
    return "\n".join(lines[1:])


def verdict(cells: Sequence[dict], nfe: int) -> str:
    """The issue's target at one budget: does one of our CFG++ cells reach the anchors' best
    accuracy at a lower KID than every anchor's cells that reach it?"""
    mine = [c for c in cells if c["nfe"] == nfe]
    anchors = [c for c in mine if c["source"] != "ours"]
    ours_pp = [c for c in mine if c["source"] == "ours" and c["cfg_pp"]]
    if not anchors or not ours_pp:
        return f"NFE {nfe}: nothing to compare."
    best_acc = max(c["acc"] for c in anchors)
    a_best = min((c for c in anchors if c["acc"] >= best_acc), key=lambda c: c["kid"])
    reach = [c for c in ours_pp if c["acc"] >= best_acc]
    def name(c):
        return f"{c['label']} ({'CFG++ ' if c['cfg_pp'] else 'CFG '}{c['cfg']:g}, {c['source']})"
    if not reach:
        top = max(ours_pp, key=lambda c: (c["acc"], -c["kid"]))
        return (f"NFE {nfe}: **missed**: the anchors' best accuracy is {best_acc:.3f} ({name(a_best)}, KID "
                f"{fmt_mean_sd(a_best['kid'], a_best['kid_sd'], 3)}); our best CFG++ accuracy is {top['acc']:.3f} "
                f"({name(top)}, KID {fmt_mean_sd(top['kid'], top['kid_sd'], 3)}): short by {best_acc - top['acc']:.3f}.")
    o_best = min(reach, key=lambda c: c["kid"])
    ok = o_best["kid"] < a_best["kid"]
    margin = a_best["kid"] - o_best["kid"]
    sd = max(o_best["kid_sd"], a_best["kid_sd"])
    return (f"NFE {nfe}: **{'met' if ok else 'missed'}**: at the anchors' best accuracy ({best_acc:.3f}) the lowest "
            f"anchor KID is {fmt_mean_sd(a_best['kid'], a_best['kid_sd'], 3)} ({name(a_best)}); ours "
            f"{fmt_mean_sd(o_best['kid'], o_best['kid_sd'], 3)} ({name(o_best)}, accuracy {o_best['acc']:.3f}): "
            f"{'lower' if ok else 'higher'} by {abs(margin):.3g} (largest seed spread of the two: {sd:.3g}"
            + ("; the difference is within it: not resolved at this sample size)." if abs(margin) < sd else ")."))


def _name(c: dict) -> str:
    return f"{c['label']} ({'CFG++ ' if c['cfg_pp'] else 'CFG '}{c['cfg']:g}, {c['source']})"


def paired(a: Sequence[float], b: Sequence[float]) -> Tuple[float, float, float]:
    """(mean, sd, MDD) of the per-seed differences ``a - b`` (same seeds, same order): the
    mean and sample standard deviation over the seeds and the one-sided 95 % minimum
    detectable difference t(0.95, S - 1) x sd / sqrt(S) (:func:`~seeds_samplers.bench.decide.mdd`)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds, got {len(a)} and {len(b)}")
    d_mean, d_sd = mean_sd([x - y for x, y in zip(a, b)])
    return d_mean, d_sd, mdd([d_sd], len(a))


def _reaches(c: dict, top: dict) -> bool:
    """Whether ``c`` reaches ``top``'s accuracy: its paired accuracy difference is not a
    called loss (one-sided 95 %)."""
    d, sd, _ = paired(c["accs"], top["accs"])
    return not (d < 0 and called(d, sd, len(c["accs"])))


def _decided(cells: Sequence[dict], nfe: int) -> Optional[dict]:
    """The contenders of one budget: the best-accuracy anchor ``top``, the anchors and our
    entries that reach it, our best (``best``: lowest KID among ours that reach, else the
    highest accuracy) and the paired KID differences best - anchor ``diffs`` [(anchor, mean, sd, MDD)]."""
    mine = [c for c in cells if c["nfe"] == nfe]
    anchors = [c for c in mine if c["source"] != "ours"]
    ours_pp = [c for c in mine if c["source"] == "ours" and c["cfg_pp"]]
    if not anchors or not ours_pp:
        return None
    top = min(anchors, key=lambda c: (-c["acc"], c["kid"]))
    ref = [a for a in anchors if _reaches(a, top)]
    reach = [c for c in ours_pp if _reaches(c, top)]
    best = (min(reach, key=lambda c: c["kid"]) if reach
            else min(ours_pp, key=lambda c: (-c["acc"], c["kid"])))
    diffs = [(a,) + paired(best["kids"], a["kids"]) for a in ref]
    return dict(cells=mine, top=top, ref=ref, reach=reach, best=best, diffs=diffs)


def decided_verdict(cells: Sequence[dict], nfe: int) -> str:
    """The issue's target at one budget from the contenders pass, on paired differences: met
    when our best entry's KID is lower than every anchor that reaches the anchors' best
    accuracy by more than the MDD, met on the mean when only lower, else missed by how much."""
    t = _decided(cells, nfe)
    if t is None:
        return f"NFE {nfe}: nothing to compare."
    top, best, seeds = t["top"], t["best"], len(t["top"]["accs"])
    if not t["reach"]:
        d, sd, m = paired(best["accs"], top["accs"])
        a, kd, k_sd, k_m = min(t["diffs"], key=lambda r: r[0]["kid"])
        return (f"NFE {nfe}: **missed** on accuracy: the anchors' best accuracy is {fmt_mean_sd(top['acc'], top['acc_sd'])} "
                f"({_name(top)}); our best CFG++ entry {_name(best)} reads {fmt_mean_sd(best['acc'], best['acc_sd'])}: "
                f"paired difference {fmt_mean_sd(d, sd)} (MDD {m:.3g}), a called loss. Its KID minus that of the "
                f"lowest-KID anchor at the best accuracy, {_name(a)} (KID {fmt_mean_sd(a['kid'], a['kid_sd'])}), "
                f"per seed: {fmt_mean_sd(kd, k_sd)} (MDD {k_m:.3g}).")
    worst = max(t["diffs"], key=lambda r: r[1])
    binding = max(t["diffs"], key=lambda r: r[1] + r[3])
    if worst[1] >= 0:
        status, (a, d, sd, m) = "missed", worst
        tail = f"higher by {d:.3g}" + (" (a called loss)" if called(d, sd, seeds) else " (within the MDD)")
    elif binding[1] + binding[3] >= 0:
        status, (a, d, sd, m) = "met on the mean, not resolved", binding
        tail = f"lower by {-d:.3g}, within the MDD"
    else:
        status, (a, d, sd, m) = "met", binding
        tail = f"lower by {-d:.3g}, beyond the MDD"
    return (f"NFE {nfe}: **{status}**: ours {_name(best)} (accuracy {fmt_mean_sd(best['acc'], best['acc_sd'])}, KID "
            f"{fmt_mean_sd(best['kid'], best['kid_sd'])}) minus {_name(a)} (accuracy {fmt_mean_sd(a['acc'], a['acc_sd'])}, "
            f"KID {fmt_mean_sd(a['kid'], a['kid_sd'])}), per seed: KID {fmt_mean_sd(d, sd)}, MDD {m:.3g}: {tail}; "
            f"{len(t['ref'])} of the {sum(c['source'] != 'ours' for c in t['cells'])} anchor cells reach the "
            f"anchors' best accuracy ({top['acc']:.3f}, {_name(top)}).")


def decided_markdown(cells: Sequence[dict], nfe: int) -> str:
    """The contenders of one budget, by KID, with the paired differences to our best entry."""
    t = _decided(cells, nfe)
    if t is None:
        return ""
    best = t["best"]
    lines = [f"| solver | source | scale | calls | accuracy | KID x 10^3 | paired KID: {best['label']} − row (MDD) "
             f"| paired accuracy: {best['label']} − row (MDD) |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for c in sorted(t["cells"], key=lambda c: c["kid"]):
        if c is best:
            dk = da = "our best"
        else:
            k, k_sd, k_m = paired(best["kids"], c["kids"])
            a, a_sd, a_m = paired(best["accs"], c["accs"])
            dk, da = f"{fmt_mean_sd(k, k_sd)} ({k_m:.3g})", f"{fmt_mean_sd(a, a_sd)} ({a_m:.3g})"
        kind = "CFG++" if c["cfg_pp"] else "CFG"
        lines.append(f"| {c['label']} | {c['source']} | {kind} {c['cfg']:g} | {c['calls']} | "
                     f"{fmt_mean_sd(c['acc'], c['acc_sd'])} | {fmt_mean_sd(c['kid'], c['kid_sd'])} | {dk} | {da} |")
    return "\n".join(lines)


def page(cells: Sequence[dict], floor: Dict[str, Tuple[float, float]], samples: int, seeds: Sequence[int],
         seconds: float, command: str, counts: Optional[Dict[str, int]] = None,
         decided: Optional[Sequence[dict]] = None, decided_floor: Optional[Dict[str, Tuple[float, float]]] = None,
         decided_samples: int = 0, decided_counts: Optional[Dict[str, int]] = None) -> str:
    intro = __doc__.split("``: ", 1)[1].split("Writes the page")[0].strip()
    budgets = sorted({c["nfe"] for c in cells})
    counts, decided_counts = counts or {}, decided_counts or {}
    runs = (f"{counts.get('measured', 0) + decided_counts.get('measured', 0)} runs measured by this call; "
            f"{counts.get('cached', 0) + decided_counts.get('cached', 0)} runs read from its --cache file, measured "
            f"by an earlier call of the same command")
    out = ["# CFG++ and classifier-free guidance on digits-cond", "",
           f"Written by `{command}` (screening: {samples} samples per seed"
           + (f", contenders: {decided_samples}" if decided else "") + f", seeds {', '.join(map(str, seeds))}; "
           f"{seconds / 60:.1f} min on one core for the {runs}). " + intro, "",
           f"Real digits, as many as the screening's samples: accuracy {fmt_mean_sd(*floor['acc'])}, KID x 10^3 "
           f"{fmt_mean_sd(*floor['kid'])} (the KID floor: its spread is the metric's noise at this size).", "",
           "## The target", "",
           "At equal calls, our best CFG++ entry reaches the anchors' best accuracy at a lower KID than every "
           "anchor (k-diffusion's bases at CFG 1-8 and ComfyUI's cfg_pp samplers at their CFG++ scales)."]
    if decided:
        out += ["", f"Decided on the contenders ({decided_samples} samples per seed, fresh paired draws; the "
                f"contenders' tables are under each budget below). KID floor at {decided_samples} real digits: "
                f"{fmt_mean_sd(*decided_floor['kid'])} (accuracy {fmt_mean_sd(*decided_floor['acc'])}).", ""]
        out += [f"- {decided_verdict(decided, n)}" for n in budgets]
    out += ["", f"Screening ({samples} samples per seed, means and seed spreads, not paired differences):", ""]
    out += [f"- {verdict(cells, n)}" for n in budgets]
    base = ", ".join(f"{v:g}" for v in sorted({c["cfg"] for c in cells if not c["cfg_pp"]}))
    pp = ", ".join(f"{v:g}" for v in sorted({c["cfg"] for c in cells if c["cfg_pp"]}))
    out += ["", f"The verdicts are over the measured grid (CFG {base}; CFG++ {pp}): a scale between these, e.g. a "
            "CFG between the lowest two, may reach the best accuracy at a lower KID and was not measured. "
            "In the screening, accuracy has a resolution of one sample in all the seeds' samples, and \"reaches\" "
            "means a mean accuracy at least the anchors' best; in the contenders pass it means no called paired "
            "accuracy loss to the best-accuracy anchor."]
    for n in budgets:
        out += ["", f"## {n} model calls", ""]
        if decided:
            out += [f"Contenders, {decided_samples} samples per seed (paired differences per seed, mean ± sd over "
                    "the seeds, MDD in parentheses):", "", decided_markdown(decided, n), ""]
        out += [f"Screening, {samples} samples per seed: accuracy on the requested digit / KID x 10^3 to its "
                "held-out digits. Bold: per row, the lowest KID among the scales at that row's best accuracy. A "
                "number in parentheses: the calls the sampler took when the budget does not divide into its steps.",
                "", markdown(cells, n)]
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers guidance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="samples per seed (balanced over digits)")
    ap.add_argument("--contender-samples", type=int, default=CONTENDER_SAMPLES,
                    help="samples per seed of the contenders pass (0: screening only)")
    ap.add_argument("--cfg-pp-scales", type=float, nargs="+", default=list(CFG_PP_SCALES),
                    help="CFG++ scales of the screening grid")
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, ...)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--cache", type=Path, default=None, help="JSON-lines file of measured cells (resume / rewrite)")
    ap.add_argument("--doc", type=Path, default=None, help="write the page to this markdown file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = tuple(range(args.seeds))
    start = time.time()
    counts: Dict[str, int] = {}
    pool = guidance_contenders()
    cells, floor = measure(args.samples, seeds, cfg_pp_scales=args.cfg_pp_scales, contenders=pool,
                           cache=args.cache, counts=counts)
    decided, decided_floor, decided_counts = None, None, {}
    if args.contender_samples:
        decided, decided_floor = measure(args.contender_samples, seeds, plan=contender_plan(cells, pool, slack=1.0 / (args.samples * len(seeds))),
                                         cache=args.cache, counts=decided_counts, stream=CONTENDER_STREAM)
    seconds = time.time() - start
    command = ("python -m seeds_samplers guidance" + (f" --samples {args.samples}" if args.samples != DEFAULT_SAMPLES
                                                      else "")
               + (f" --contender-samples {args.contender_samples}" if args.contender_samples != CONTENDER_SAMPLES
                  else "")
               + (" --cfg-pp-scales " + " ".join(f"{v:g}" for v in args.cfg_pp_scales)
                  if list(args.cfg_pp_scales) != list(CFG_PP_SCALES) else "")
               + (" --cache FILE" if args.cache else "") + (f" --doc {args.doc}" if args.doc else ""))
    if os.environ.get("COMFYUI_ROOT"):
        command = "COMFYUI_ROOT=... " + command
    text = page(cells, floor, args.samples, seeds, seconds, command, counts, decided, decided_floor,
                args.contender_samples, decided_counts)
    print(text)
    if args.doc is not None:
        args.doc.write_text(text)
        print(f"wrote {args.doc}")
    return 0
