"""``python -m seeds_samplers guidance``: CFG++ against classifier-free guidance on the
class-conditional digits model (digits-cond, SD's discrete eps schedule), as users run them.

The CFG++ forms (``cfg_pp=True``, docs/algorithms.md, CFG++) of SEEDS-1/2/3, ER-SDE, DEIS and
iPNDM at their menu entries' settings, at CFG++ scales 0.5, 0.75 and 1.0, against two kinds of
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

Writes the page with ``--doc``; ``--cache FILE`` keeps every measured cell (JSON lines), so
an interrupted run resumes and the page can be rewritten from the same measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..digits.data import load_digits
from ..digits.denoiser import load_digits_model
from ..digits.fd import class_kernel_distance, features, load_classifier
from ..digits.guidance import CFGDenoiser
from ..samplers import registry
from .compare import Contender, kdiffusion, ours, run_at_budget
from .report import fmt_mean_sd

__all__ = ["BASE_SCALES", "CFG_PP_SCALES", "BUDGETS", "BASE_ANCHORS", "COMFY_CFG_PP", "CFG_PP_IDS",
           "guidance_contenders", "ComfyCFGModel", "ClassMetrics", "measure", "markdown", "verdict", "main"]

BASE_SCALES = (1.0, 2.0, 3.0, 8.0)
CFG_PP_SCALES = (0.5, 0.75, 1.0)
BUDGETS = (8, 10, 20)
SEEDS = (0, 1, 2)
SCHEDULE = "karras"
BASE_ANCHORS = ("dpmpp_2m", "dpmpp_2m_sde", "euler")
COMFY_CFG_PP = ("euler_cfg_pp", "dpmpp_2m_cfg_pp")
CFG_PP_IDS = ("seeds_1", "seeds_2", "seeds_3", "er_sde", "deis", "ipndm")
DEFAULT_SAMPLES = 40  # per seed (4 per digit): the grid in ~1 h on one niced core of a busy 2-core machine


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


def _key(label: str, cfg: float, nfe: int, seed: int, samples: int) -> str:
    return f"{label}|{cfg:g}|{nfe}|{seed}|{samples}"


def measure(samples: int = DEFAULT_SAMPLES, seeds: Sequence[int] = SEEDS, budgets: Sequence[int] = BUDGETS,
            base_scales: Sequence[float] = BASE_SCALES, cfg_pp_scales: Sequence[float] = CFG_PP_SCALES,
            contenders: Optional[List[Tuple[Contender, bool]]] = None, weights: Optional[Path] = None,
            cache: Optional[Path] = None, log: Callable[[str], None] = print,
            counts: Optional[Dict[str, int]] = None) -> Tuple[List[dict], Dict[str, Tuple[float, float]]]:
    """(cells, floor): cells {label, source, cfg_pp, cfg, nfe, calls, acc, acc_sd, kid, kid_sd}
    with mean and standard deviation over ``seeds``; floor {"acc", "kid"} of real digits.
    ``weights``: a digits-cond weight file other than the shipped one; ``cache``: a JSON-lines
    file of measured cells, read first and appended to; ``counts`` (if given) gets how many
    (contender, scale, budget, seed) runs were ``"measured"`` now and read from the ``"cached"`` file."""
    if samples < 20:
        raise ValueError(f"need at least 20 samples per seed (2 per digit, for KID), got {samples}")
    contenders = guidance_contenders() if contenders is None else contenders
    net = load_digits_model("cond", weights)
    net.net.to(memory_format=torch.channels_last)  # ~30 % faster on the CPU, same outputs to round-off
    labels = requested_labels(samples)
    plain = CFGDenoiser(net, labels=labels)
    keep = CFGDenoiser(net, labels=labels, keep_uncond=True)  # CFG++: the uncond half at every scale
    comfy_model = None
    if any(c.source == "ComfyUI" for c, _ in contenders):
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
        x = net.prior_sample(samples, torch.Generator().manual_seed(seed))
        for nfe in budgets:
            for c, pp in contenders:
                model = comfy_model if c.source == "ComfyUI" else keep if pp else plain
                for cfg in (cfg_pp_scales if pp else base_scales):
                    key = _key(c.label, cfg, nfe, seed, samples)
                    if counts is not None:
                        counts["cached" if key in done else "measured"] = counts.get(
                            "cached" if key in done else "measured", 0) + 1
                    if key not in done:
                        (keep if pp else plain).cfg_scale = cfg
                        with torch.inference_mode():
                            out, calls = run_at_budget(c, model, x, nfe, SCHEDULE, seed)
                        acc, kid = metrics(out, labels)
                        done[key] = (acc, kid, calls)
                        if cache is not None:
                            with cache.open("a") as f:
                                f.write(json.dumps(dict(key=key, acc=acc, kid=kid, calls=calls)) + "\n")
                        log(f"  seed {seed} NFE {nfe:2d} {c.label:24s} scale {cfg:g} calls={calls:2d} "
                            f"acc={acc:.3f} KID={kid:.2f}")
                    per.setdefault((c.label, c.source, pp, cfg, nfe), []).append(done[key])
    cells = []
    for (label, source, pp, cfg, nfe), vals in per.items():
        acc, acc_sd = _mean_sd([v[0] for v in vals])
        kid, kid_sd = _mean_sd([v[1] for v in vals])
        cells.append(dict(label=label, source=source, cfg_pp=pp, cfg=cfg, nfe=nfe, calls=vals[0][2],
                          acc=acc, acc_sd=acc_sd, kid=kid, kid_sd=kid_sd))
    floor_vals = [metrics.floor(samples, seed) for seed in seeds]
    floor = {"acc": _mean_sd([v[0] for v in floor_vals]), "kid": _mean_sd([v[1] for v in floor_vals])}
    return cells, floor


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


def page(cells: Sequence[dict], floor: Dict[str, Tuple[float, float]], samples: int, seeds: Sequence[int],
         seconds: float, command: str, counts: Optional[Dict[str, int]] = None) -> str:
    intro = __doc__.split("``: ", 1)[1].split("Writes the page")[0].strip()
    budgets = sorted({c["nfe"] for c in cells})
    out = ["# CFG++ and classifier-free guidance on digits-cond", "",
           f"Written by `{command}` ({samples} samples per seed, seeds {', '.join(map(str, seeds))}; "
           f"{seconds / 60:.1f} min on one core for the {(counts or {}).get('measured', 0)} runs measured by this "
           f"call; {(counts or {}).get('cached', 0)} runs read from its --cache file, measured by an earlier call "
           f"of the same command). " + intro, "",
           f"Real digits, as many as the samples: accuracy {fmt_mean_sd(*floor['acc'])}, KID x 10^3 "
           f"{fmt_mean_sd(*floor['kid'])} (the KID floor: its spread is the metric's noise at this size).", "",
           "## The target", "",
           "At equal calls, our best CFG++ entry reaches the anchors' best accuracy at a lower KID than every "
           "anchor (k-diffusion's bases at CFG 1-8 and ComfyUI's cfg_pp samplers at 0.5-1.0):", ""]
    out += [f"- {verdict(cells, n)}" for n in budgets]
    base = ", ".join(f"{v:g}" for v in sorted({c["cfg"] for c in cells if not c["cfg_pp"]}))
    pp = ", ".join(f"{v:g}" for v in sorted({c["cfg"] for c in cells if c["cfg_pp"]}))
    out += ["", f"The verdict is over the measured grid (CFG {base}; CFG++ {pp}): a scale between these, e.g. a "
            "CFG between the lowest two, may reach the best accuracy at a lower KID and was not measured. "
            "Accuracy here has a resolution of one sample in all the seeds' samples, and \"reaches\" means a "
            "mean accuracy at least the anchors' best; compare KID differences with the seed spreads and the "
            "floor above."]
    for n in budgets:
        out += ["", f"## {n} model calls (accuracy on the requested digit / KID x 10^3 to its held-out digits)", "",
                "Bold: per row, the lowest KID among the scales at that row's best accuracy. A number in "
                "parentheses: the calls the sampler took when the budget does not divide into its steps.", "",
                markdown(cells, n)]
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers guidance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="samples per seed (balanced over digits)")
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, ...)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--cache", type=Path, default=None, help="JSON-lines file of measured cells (resume / rewrite)")
    ap.add_argument("--doc", type=Path, default=None, help="write the page to this markdown file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = tuple(range(args.seeds))
    start = time.time()
    counts: Dict[str, int] = {}
    cells, floor = measure(args.samples, seeds, cache=args.cache, counts=counts)
    seconds = time.time() - start
    command = ("python -m seeds_samplers guidance" + (f" --samples {args.samples}" if args.samples != DEFAULT_SAMPLES
                                                      else "") + (" --cache FILE" if args.cache else "")
               + (f" --doc {args.doc}" if args.doc else ""))
    if os.environ.get("COMFYUI_ROOT"):
        command = "COMFYUI_ROOT=... " + command
    text = page(cells, floor, args.samples, seeds, seconds, command, counts)
    print(text)
    if args.doc is not None:
        args.doc.write_text(text)
        print(f"wrote {args.doc}")
    return 0
