"""Decided tables on the trained models: a kernel distance with resolution, paired over
seeds, with its floor and minimum detectable difference printed beside every table.

Metric: KID (the unbiased kernel distance of :func:`seeds_samplers.digits.fd.kernel_distance`,
Binkowski et al. 2018) between ``samples`` generated images per seed (default 2,000) and the
dataset's held-out images, on the dataset's classifier features (:class:`~seeds_samplers.
digits.fd.DigitsFD`), reported x 1,000. Unlike FD it has no sample-size bias, and paired
differences resolve far below its per-seed spread.

Design (paired): a seed fixes the initial latents and the noise stream; every contender of a
table runs from the same latents with the same noise, in chunks of :data:`CHUNK` samples
(chunk ``k`` of seed ``s`` draws its noise from ``noise_seed(s) + k``), ComfyUI's samplers too
(:mod:`.comfy`). The difference of two contenders is taken per seed, then its mean and
sample standard deviation over the seeds.

Every table states:

* the *floor*: KID of as many real training images (a seeded subset per seed) against the
  same held-out reference, mean ± spread over the seeds: what a perfect sampler of the
  training distribution would score;
* the *minimum detectable difference* (MDD): t(0.95, S - 1) x s_d / sqrt(S) with S seeds and
  s_d the pooled (root-mean-square) spread of the table's paired differences. A difference
  is called (a win or a loss) only when its mean exceeds t(0.95, S - 1) x its own spread /
  sqrt(S) (one-sided 95 %); otherwise the row says "level".

Budget: a cheap screening pass (``screen_samples`` per cell, one seed) ranks the anchors of
the table's kind (stochastic / deterministic) and keeps the best ``keep`` of them; the
full-size runs cover only those and our menu entries of that kind. Every per-seed result is
cached (:func:`cache_dir`) under a key of model weights, schedule, seed, contender, NFE,
sample count and code version (for a sampler of ours what it computes, :func:`_ours_behaviour`;
for an anchor its package or checkout file; the metric's network and this module's
:data:`VERSION`), so a re-run or an extended table only computes what changed. Each table
says how long it took and how many model evaluations it cost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import resource
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .compare import Contender, schedule_for
from .contenders import anchor_contenders, menu_contenders, shown_settings
from .grid import mean_sd, noise_seed
from .limits import LIMIT_CALLS, ODE_CHECK, PATH_CALLS, SHARED_PROCESS, Yardstick, ode_steps
from ..digits.denoiser import model_dataset
from .models import GUIDED, TRAINED_KINDS, TestModel, build_model
from .report import fmt_mean_sd, fmt_settings

__all__ = ["ROOM", "VERSION", "CHUNK", "KID_RESOLUTION", "TRAINED", "write_decided", "INTRO", "KID_UNITS", "cache_dir",
           "kid_model", "screen", "run_table", "table_section", "mdd", "called", "T95", "summarise_measured",
           "YARDSTICKS", "check_yardstick", "scored_model", "limit_model", "OUR_BEST", "LEVEL", "BEHIND_OUR_BEST",
           "OURS_AHEAD", "OURS_BEHIND", "ANOTHER_SDE", "BELOW_CONVERGED", "BELOW_OWN_CONVERGED",
           "converged_process"]

VERSION = 1  # of the generation and scoring below: part of every cache key
CHUNK = 250  # samples per model call: the digits U-Net's cost per sample rises above ~250 on a CPU
KID_UNITS = 1e3
# one-sided 95 % quantiles of Student's t by degrees of freedom (normal beyond 10)
T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812}


def t95(df: int) -> float:
    return T95.get(df, 1.645) if df >= 1 else math.inf


def cache_dir() -> Path:
    """``$SEEDS_SAMPLERS_CACHE/bench`` or ``~/.cache/seeds_samplers/bench``."""
    root = os.environ.get("SEEDS_SAMPLERS_CACHE") or Path.home() / ".cache" / "seeds_samplers"
    return Path(root) / "bench"


# --- the metric on a test model ---------------------------------------------------------------

_DATASET = {name: model_dataset(kind) for name, kind in TRAINED_KINDS.items()}  # whose classifier scores it
TRAINED = tuple(_DATASET)  # the models whose bench tables are decided tables


@lru_cache(maxsize=None)
def _metric(dataset: str):
    from ..digits.fd import DigitsFD

    return DigitsFD(dataset=dataset)


def kid_model(name: str) -> TestModel:
    """The trained test model ``name`` scored by KID x 1,000 against its held-out images."""
    if name not in _DATASET:
        raise ValueError(f"decided tables run on the trained models {sorted(_DATASET)}, got {name!r}")
    model = build_model(name)
    if name in GUIDED:  # already scored by the KID to the held-out digits of each requested class
        return model
    dataset = _DATASET[name]
    return dataclasses.replace(model, metric="KID×10³",
                               _score=lambda s: KID_UNITS * _metric(dataset).kid(s),
                               _floor=lambda n, seed: KID_UNITS * _metric(dataset).kid_floor(n, seed))


# the decided tables' and sweeps' scores (module docstring, bench/limits.py); "path" scores
# stochastic samplers only (the ODE limit already is per sample)
YARDSTICKS = ("data", "limit", "path")


def check_yardstick(yardstick: str) -> str:
    """``yardstick`` if it is one of :data:`YARDSTICKS` (raises ``ValueError``)."""
    if yardstick not in YARDSTICKS:
        raise ValueError(f"yardstick must be one of {', '.join(YARDSTICKS)}, got {yardstick!r}")
    return yardstick


def scored_model(model: TestModel, kind: str, schedule: str,
                 yardstick: str) -> Tuple[TestModel, Optional[Yardstick]]:
    """A trained ``model`` as ``yardstick`` scores it: itself (the KID to the held-out images)
    for "data", :func:`limit_model` for "limit" and (stochastic ``kind`` only) "path" (the
    Yardstick; None for "data")."""
    if check_yardstick(yardstick) == "data":
        return model, None
    if yardstick == "path" and kind != "stochastic":
        raise ValueError("the path yardstick scores stochastic samplers; deterministic ones are already scored "
                         "per sample against the ODE limit by the limit yardstick")
    return limit_model(model, kind, schedule, pathwise=yardstick == "path")


def limit_model(model: TestModel, kind: str, schedule: str,
                pathwise: bool = False) -> Tuple[TestModel, Yardstick]:
    """``model`` scored against the converged process its samplers discretise (the ODE
    limit per latent for ``kind`` "deterministic", the SDE's law for "stochastic", or with
    ``pathwise`` the SDE's solution on each sample's Brownian path; :mod:`.limits`), and the
    :class:`~.limits.Yardstick` that scores it."""
    if model.name not in _DATASET:
        raise ValueError(f"the limit yardstick scores the trained models {sorted(_DATASET)}, got {model.name!r}")

    def key(**fields) -> str:
        # the code a limit runs: the model-type maps (its end points, a flow model's x(0)), and
        # a stochastic limit's solver (label, source, params); not every solver of samplers/,
        # so that a solver change recomputes only the limits it takes part in
        solver = fields.get("solver")
        code = [_model_types_version()] + ([_source_version(solver[1])] if solver else [])
        full = dict(fields, version=VERSION, model=model.name, weights=_model_version(model), code=code)
        return hashlib.sha1(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()

    labels = None
    if model.name in GUIDED and kind == "stochastic" and not pathwise:
        from ..digits.guidance import balanced_labels as labels  # what the guided model requested per sample
    # the limits are generated with the noise the yardstick drives the table's samplers with
    yard = Yardstick(model, schedule,
                     lambda cs, nfe, seed, n, sigmas=None, noise=None:
                     _generate(model, cs, nfe, seed, schedule, n, noise or yard.noise, sigmas),
                     key, cache_dir(), _metric(_DATASET[model.name]).kid_features, labels, pathwise)
    if pathwise:
        guided = "guided " if model.name in GUIDED else ""
        name = "RMS to SDE path ×10³"
        what = f"per-sample RMS pixel distance to the {guided}SDE's solution on the same path"
    elif kind == "deterministic":
        guided = "guided " if model.name in GUIDED else ""
        name, what = "RMS to ODE limit ×10³", f"per-sample RMS pixel distance to the converged {guided}ODE"
    else:
        name = "KID×10³ to SDE limit"
        what = "KID per requested digit to the converged guided SDE (its law)" if labels else \
            "KID to the converged SDE (its law)"
    return dataclasses.replace(model, metric=name, title=f"{model.name}: {what}"), yard


# --- cache ----------------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]


_SAMPLERS = Path(__file__).resolve().parent.parent / "samplers"  # the package's solvers


@lru_cache(maxsize=None)
def _ours_version() -> str:
    h = hashlib.sha1()
    for p in sorted(_SAMPLERS.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def _model_types_version() -> str:
    return _sha(_SAMPLERS / "model_types.py")


@lru_cache(maxsize=None)
def _source_version(source: str) -> str:
    if source == "ours":
        return _ours_version()
    if source == "k-diffusion":
        from .compare import import_kdiffusion

        return _sha(Path(import_kdiffusion().__file__))
    from .comfy import comfy_root

    return _sha(Path(comfy_root()) / "comfy" / "k_diffusion" / "sampling.py")


def _model_version(model: TestModel) -> str:
    from ..digits.denoiser import model_file
    from ..digits.fd import CLASSIFIERS
    from ..digits.weights import weights_path

    meta = model.payload["meta"]
    weights = Path(meta["weights"]) if meta.get("weights") else weights_path(model_file(meta["digits_kind"]))
    classifier = weights_path(CLASSIFIERS[_DATASET[model.name]])
    return _sha(weights) + _sha(classifier)


# What a sampler of ours computes at a cell, as a hash (:func:`_ours_behaviour`): its output on
# this small exact problem, a 3-component mixture on 1x4x4 images.
_PROBE_MEANS = ((-0.6, 0.2), (0.1, -0.4), (0.5, 0.7))
_PROBE_STDS, _PROBE_WEIGHTS, _PROBE_SAMPLES = (0.1, 0.2, 0.05), (0.5, 0.3, 0.2), 4


def _ours_behaviour(model_type, sigmas: torch.Tensor, c: Contender) -> str:
    """The samples ``c`` (a sampler of ours) draws on the probe mixture, stated to have the
    network's own model type and run on the cell's own sigmas and dtype, as a hash: a cached
    result of ours is reused exactly while this does not change, so a change to one solver
    recomputes that solver's rows and not every row of ours (a hash of samplers/ did)."""
    from .gmm import AnalyticDenoiser, GaussianMixture

    means = torch.tensor([[[[a if (i + j) % 2 else b for j in range(4)] for i in range(4)]] for a, b in _PROBE_MEANS])
    den = AnalyticDenoiser(GaussianMixture(means, _PROBE_STDS, _PROBE_WEIGHTS),
                           kind="flow" if model_type.is_flow else "vp_discrete")
    den.seeds_model_type = model_type  # what the solver reads of the network: the same code paths
    z = torch.randn(_PROBE_SAMPLES, *den.mixture.shape, generator=torch.Generator().manual_seed(0))
    x = z if model_type.is_flow else z * float(sigmas[0])  # the network's prior: noise at its first sigma
    with torch.inference_mode():
        out = c(den, x.to(torch.float32), sigmas, 0)
    return hashlib.sha1(out.to(torch.float64).numpy().tobytes() + str(den.calls).encode()).hexdigest()[:16]


def _code(model: TestModel, schedule: str, c: Contender, nfe: int) -> str:
    """The code version in a result's cache key: an anchor's source file, what ours computes."""
    if c.source != "ours":
        return _source_version(c.source)
    at = (model.name, schedule, nfe, c.label, repr(sorted(c.params.items())))
    if at not in _BEHAVIOUR:  # once per process and cell
        sig = schedule_for(model.denoiser, c.intervals_for(nfe), schedule)
        _BEHAVIOUR[at] = "ours:" + _ours_behaviour(model.model_type, sig, c)
    return _BEHAVIOUR[at]


_BEHAVIOUR: Dict[tuple, str] = {}


def _key(model: TestModel, schedule: str, seed: int, c: Contender, nfe: int, samples: int,
         yardstick: Optional[dict] = None) -> Tuple[str, dict]:
    fields = dict(version=VERSION, model=model.name, weights=_model_version(model), schedule=schedule, seed=seed,
                  label=c.label, source=c.source, params=repr(sorted(c.params.items())), nfe=nfe, samples=samples,
                  code=_code(model, schedule, c, nfe))
    if yardstick is not None:  # a score other than the KID to the held-out images (bench/limits.py)
        fields["yardstick"] = yardstick
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest(), fields


def _cached(key: str) -> Optional[dict]:
    path = cache_dir() / f"{key}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _store(key: str, fields: dict, value: float, calls: int, seconds: float, extras: Optional[dict] = None) -> None:
    path = cache_dir() / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(fields, value=value, calls=calls, seconds=seconds, extras=extras or {})))
    tmp.replace(path)


# --- generation ------------------------------------------------------------------------------------


def _generate(model: TestModel, contenders: Sequence[Contender], nfe: int, seed: int, schedule: str,
              samples: int, noise: Union[str, Callable] = "gaussian", sigmas: Optional[torch.Tensor] = None
              ) -> List[Tuple[torch.Tensor, int]]:
    """Samples and model calls of each contender from seed ``seed``'s latents and noise
    (``noise``: the kind a stochastic contender draws, :data:`.compare.NOISES`, or such a
    class; ours and k-diffusion's only), on the host
    schedule ``schedule`` at ``nfe`` calls or on the given ``sigmas``."""
    x = model.prior(samples, seed)
    chunks = [(k, x[k0:k0 + CHUNK]) for k, k0 in enumerate(range(0, samples, CHUNK))]
    out: Dict[int, Tuple[List[torch.Tensor], int]] = {}
    comfy = [(i, c) for i, c in enumerate(contenders) if c.source == "ComfyUI"]

    def sigmas_of(c: Contender) -> torch.Tensor:
        return schedule_for(model.denoiser, c.intervals_for(nfe), schedule) if sigmas is None else sigmas

    for i, c in enumerate(contenders):
        if c.source == "ComfyUI":
            continue
        sig = sigmas_of(c)
        parts, before = [], model.calls
        for k, xc in chunks:
            with torch.inference_mode():
                parts.append(c(model.denoiser, xc, sig, noise_seed(seed) + k, noise))
        out[i] = (parts, (model.calls - before) // len(chunks))
    if comfy:
        if not isinstance(noise, str):  # the ComfyUI runner draws its noise by name in its own process
            raise ValueError("ComfyUI's samplers draw the named noises of .compare.NOISES only")
        from .comfy import run_comfy_jobs

        jobs, keys = [], []
        for i, c in comfy:
            sig = sigmas_of(c)
            for k, xc in chunks:
                jobs.append(dict(sampler=c.params["comfy"], x=xc, sigmas=sig, noise_seed=noise_seed(seed) + k,
                                 stochastic=c.stochastic, noise=noise))
                keys.append(i)
        for i, (o, calls) in zip(keys, run_comfy_jobs(model, jobs)):
            parts, _ = out.setdefault(i, ([], calls))
            parts.append(o)
    return [(torch.cat(out[i][0]), out[i][1]) for i in range(len(contenders))]


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the ComfyUI runs), all threads."""
    return time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime


def measure(model: TestModel, contenders: Sequence[Contender], nfe: int, seeds: Sequence[int], schedule: str,
            samples: int, log: Callable[[str], None] = print,
            yardstick: Optional[Yardstick] = None) -> Tuple[Dict[Tuple[str, str], Dict[int, dict]], dict]:
    """{(label, source): {seed: {value, calls}}} for every contender and seed (cached
    results reused), and the cost of this call: {runs, cached, seconds (wall), cpu (CPU
    seconds), sample_calls}. ``yardstick``: score against the converged process
    (:class:`.limits.Yardstick`) instead of the model's own score."""
    res: Dict[Tuple[str, str], Dict[int, dict]] = {(c.label, c.source): {} for c in contenders}
    cost = dict(runs=0, cached=0, seconds=0.0, cpu=0.0, sample_calls=0)
    for seed in seeds:
        todo = []
        for c in contenders:
            key, fields = _key(model, schedule, seed, c, nfe, samples, yardstick and yardstick.fields_for(c))
            hit = _cached(key)
            if hit is not None:
                res[(c.label, c.source)][seed] = hit
                cost["cached"] += 1
            else:
                todo.append((c, key, fields))
        if not todo:
            continue
        t, cpu = time.time(), _cpu_seconds()
        outs = _generate(model, [c for c, _, _ in todo], nfe, seed, schedule, samples,
                         yardstick.noise if yardstick is not None else "gaussian")
        gen_seconds = (time.time() - t) / len(todo)
        for (c, key, fields), (samples_out, calls) in zip(todo, outs):
            value = model.score(samples_out) if yardstick is None else yardstick.score(c, seed, nfe, samples_out)
            extras = model.extras(samples_out)
            _store(key, fields, value, calls, gen_seconds, extras)
            res[(c.label, c.source)][seed] = dict(value=value, calls=calls, extras=extras)
            cost["runs"] += 1
            cost["sample_calls"] += calls * samples
            log(f"  [{model.name} {schedule} NFE {nfe} seed {seed}] {c.label[:30]:30s} {c.source[:11]:11s} "
                f"calls={calls:3d} {model.metric}={value:.3f}")
        cost["seconds"] += time.time() - t
        cost["cpu"] += _cpu_seconds() - cpu
    return res, cost


# --- screening and the table -------------------------------------------------------------------------


def screen(model: TestModel, kind: str, nfe: int, schedule: str, samples: int, keep: int, comfy: bool = True,
           seed: int = 0, log: Callable[[str], None] = print,
           yardstick: Optional[Yardstick] = None) -> Tuple[List[Contender], List[Tuple[str, str, float]], dict]:
    """The ``keep`` best anchors of ``kind`` ("stochastic" / "deterministic") at one cell, by
    the table's score on ``samples`` samples of one seed; also every screened (label, source, value)."""
    pool = [c for c in anchor_contenders(comfy) if c.stochastic == (kind == "stochastic")]
    res, cost = measure(model, pool, nfe, [seed], schedule, samples, log, yardstick)
    ranked = sorted(pool, key=lambda c: _finite(res[(c.label, c.source)][seed]["value"]))
    scores = [(c.label, c.source, res[(c.label, c.source)][seed]["value"]) for c in ranked]
    return ranked[:keep], scores, cost


def _finite(v: float) -> float:
    return v if v is not None and math.isfinite(v) else math.inf


def mdd(paired_sds: Sequence[float], seeds: int) -> float:
    """Minimum detectable difference: t(0.95, S - 1) x pooled (RMS) paired spread / sqrt(S)."""
    sds = [s for s in paired_sds if s is not None and math.isfinite(s)]
    if not sds or seeds < 2:
        return math.inf
    return t95(seeds - 1) * math.sqrt(sum(s * s for s in sds) / len(sds)) / math.sqrt(seeds)


# KID x 10^3 differences below this are round-off between two implementations of the same
# update (e.g. ComfyUI's float32 coefficients vs ours in float64; measured 1e-4 - 3e-4 on
# identical algorithms), whose paired spread is as small: never called.
KID_RESOLUTION = 0.01


def called(d_mean: float, d_sd: float, seeds: int, resolution: float = 0.0) -> bool:
    """Whether a paired difference is called: |mean| > its MDD, t(0.95, S - 1) x spread /
    sqrt(S), and > ``resolution`` (the metric's round-off; :data:`KID_RESOLUTION` for KID)."""
    return (seeds >= 2 and math.isfinite(d_mean) and abs(d_mean) > mdd([d_sd], seeds)
            and abs(d_mean) > resolution)


def summarise_measured(res: Dict[Tuple[str, str], Dict[int, dict]], contenders: Sequence[Contender],
                       seeds: Sequence[int]) -> List[dict]:
    """One row per contender of a :func:`measure` result: label, source, per-seed values,
    their mean and spread, the calls it spent, and (ours) the settings it ran."""
    rows = []
    for c in contenders:
        per = res[(c.label, c.source)]
        mean, sd = mean_sd([per[s]["value"] for s in seeds])
        names = set.intersection(*(set(per[s].get("extras") or {}) for s in seeds)) if seeds else set()
        extras = {n: mean_sd([per[s]["extras"][n] for s in seeds]) for n in sorted(names)}
        rows.append(dict(label=c.label, source=c.source, values={s: per[s]["value"] for s in seeds}, mean=mean,
                         sd=sd, calls=max(per[s]["calls"] for s in seeds), extras=extras,
                         settings=shown_settings(c) if c.source == "ours" else None))
    return rows


# the schedule of an nfe-call table for one model call per step (the converged ODE's end points)
_ONE_CALL_PER_STEP = Contender("one call per step", None)


def converged_scores(model: TestModel, ode: Yardstick, nfe: int, seeds: Sequence[int],
                     samples: int) -> Dict[int, float]:
    """Per seed, ``model``'s own score (the KID to the data) of the converged ODE from that
    seed's latents (``ode``: the model's deterministic limit, :mod:`.limits`), the solve that
    every deterministic row of an ``nfe``-call table approximates. It is what an exact solver
    scores: a row that scores well below it is nearer the data through its error, not through
    its accuracy."""
    ends = ode.ends(nfe, _ONE_CALL_PER_STEP)
    return {s: _finite(model.score(ode.ode_limit(s, samples, *ends))) for s in seeds}


def converged_sde_scores(model: TestModel, sde: Yardstick, seeds: Sequence[int], samples: int,
                         c: Optional[Contender] = None) -> Dict[int, float]:
    """Per seed, ``model``'s own score (the KID to the data) of samples of the converged
    full-noise reverse SDE (``sde``: the model's stochastic limit, :mod:`.limits`; the shared
    process at its limit's calls, from the seed's own latents and noise seed), the law that
    the stochastic rows of a table approximate. Between solvers this near it, the KID to the
    data differs to first order in their laws' small differences (along the model's own
    distance to the data), where the KID to the law itself is of second order: a row below it
    is nearer the data through its error, not its accuracy. With ``c`` (a contender of
    another process: a noise window, another noise function) the same for ``c``'s own
    process, ``c`` itself at the limit's calls."""
    c = sde.shared if c is None else c
    return {s: _finite(model.score(sde.sde_from_latents(c, s, samples))) for s in seeds}


def own_converged_scores(model: TestModel, sde: Yardstick, rows: Sequence[dict], contenders: Sequence[Contender],
                         mine: dict, seeds: Sequence[int], samples: int) -> None:
    """On a stochastic table scored by the data, each anchor row ahead of our best entry
    (called, :func:`called`) that discretises another SDE than the converged one the table
    reports (``r["of_converged"]`` false: ComfyUI's ``sa_solver`` with its noise window, its
    ``er_sde`` with its noise function) gets ``r["own_converged"]``: per seed the score of its
    own process at the limit's calls from the same latents (:func:`converged_sde_scores`), so
    that its verdict can say whether it leads through its error (:func:`_below_converged`).
    Only those rows: the limit costs :data:`.limits.LIMIT_CALLS` calls per sample and seed."""
    for r, c in zip(rows, contenders):
        if not r.get("of_converged") and _verdict(r, mine, len(seeds)) == OURS_BEHIND:
            r["own_converged"] = converged_sde_scores(model, sde, seeds, samples, c)


def between_steps_floor(yard: Yardstick, rows: Sequence[dict], contenders: Sequence[Contender], mine: dict,
                        seed: int, samples: int, nfe: int) -> Optional[dict]:
    """On a path table, what the path between our best entry's own sigmas leaves on seed
    ``seed`` (:meth:`.limits.Yardstick.between_steps`: the shared SDE solved on the paths known
    only there), and how far above it our best row and the nearest anchor row of the same SDE
    lie on that seed; None when our best entry solves another process (a noise window)."""
    if mine.get("process") != "sde":
        return None
    c = next(c for r, c in zip(rows, contenders) if r is mine)
    value, above = above_between_steps(yard, c, rows, seed, samples, nfe)
    nearest = next(((r, d) for r, d in above if r["source"] != "ours"), None)
    return dict(seed=seed, value=value, sigmas=c.intervals_for(nfe) + 1, label=mine["label"],
                ours=mine["values"][seed] - value,
                anchor=None if nearest is None else (nearest[0]["label"], nearest[0]["source"], nearest[1]))


def above_between_steps(yard: Yardstick, c: Contender, rows: Sequence[dict], seed: int, samples: int,
                        nfe: int) -> Tuple[float, List[Tuple[dict, float]]]:
    """What the path between ``c``'s own sigmas at ``nfe`` calls leaves on seed ``seed``
    (:meth:`.limits.Yardstick.between_steps`), and each row of the shared SDE among ``rows``
    (those with a value on that seed) with its distance above it, nearest first."""
    value = yard.between_steps(c, seed, samples, nfe)
    shared = sorted((r for r in rows if r.get("process") == "sde" and seed in r["values"]),
                    key=lambda r: r["values"][seed])
    return value, [(r, r["values"][seed] - value) for r in shared]


def run_table(name: str, schedule: str, nfe: int, kind: str = "stochastic", seeds: Sequence[int] = (0, 1, 2),
              samples: int = 2000, screen_samples: int = 400, keep: int = 4, comfy: bool = True,
              log: Callable[[str], None] = print, yardstick: str = "data") -> dict:
    """One decided cell: screening, full-size runs of our menu entries of ``kind`` and the
    kept anchors, the floor (and on a deterministic table scored by the data, the score of the
    converged ODE itself: :func:`converged_scores`); returns everything :func:`table_section`
    prints.
    ``yardstick``: ``"data"`` (KID to the held-out images) or ``"limit"`` (distance to the
    converged process, :mod:`.limits`; the trained models)."""
    model, yard = scored_model(kid_model(name), kind, schedule, yardstick)
    t0 = time.time()
    kept, screened, screen_cost = screen(model, kind, nfe, schedule, screen_samples, keep, comfy, log=log,
                                         yardstick=yard)
    ours = [c for c in menu_contenders() if c.stochastic == (kind == "stochastic")]
    contenders = ours + kept
    res, cost = measure(model, contenders, nfe, seeds, schedule, samples, log, yard)
    rows = summarise_measured(res, contenders, seeds)
    if yard is not None and yard.pathwise:  # the process each row is scored against (_verdict)
        for r, c in zip(rows, contenders):
            r["process"] = yard.process(c)
    mine = min((r for r in rows if r["source"] == "ours"), key=lambda r: _finite(r["mean"]))
    converged = unrelated = between = None
    if yard is None:
        floor = mean_sd([model.floor(samples, s) for s in seeds])
        _, limit = limit_model(model, kind, schedule)
        if kind == "deterministic":
            converged = converged_scores(model, limit, nfe, seeds, samples)
        else:
            converged = converged_sde_scores(model, limit, seeds, samples)
        for r, c in zip(rows, contenders):  # whether the converged process is the row's own (_below_converged)
            r["of_converged"] = limit.process(c) in ("ode", "sde")
    else:
        floor = mean_sd([yard.floor(kind, s, samples, nfe, contenders[0], seeds) for s in seeds])
        if yard.pathwise and kind == "stochastic":
            unrelated = mean_sd([yard.unrelated(s, samples, seeds, nfe) for s in seeds])
            between = between_steps_floor(yard, rows, contenders, mine, seeds[0], samples, nfe)
        cost["sample_calls"] += yard.sample_calls  # the limits' own calls (their time is in the run's)
    for r in rows:
        d_mean, d_sd = mean_sd([mine["values"][s] - r["values"][s] for s in seeds])
        r["d_mean"], r["d_sd"] = (None, None) if r is mine else (d_mean, d_sd)
    if yard is None:
        if kind == "stochastic":
            own_converged_scores(model, limit, rows, contenders, mine, seeds, samples)
        cost["sample_calls"] += limit.sample_calls
    # the spread of the differences that get a verdict (a path table's rows of another SDE get none)
    m = mdd([r["d_sd"] for r in rows if r["d_sd"] is not None and same_process(r, mine)], len(seeds))
    if converged is not None:  # our best minus the exact solve, per seed
        converged = dict(score=mean_sd(list(converged.values())),
                         delta=mean_sd([mine["values"][s] - converged[s] for s in seeds]), values=converged)
    return dict(model=model, schedule=schedule, nfe=nfe, kind=kind, seeds=list(seeds), samples=samples,
                yardstick=yardstick, converged=converged, unrelated=unrelated, between=between,
                screen_samples=screen_samples, screened=screened, rows=rows, best_ours=mine, floor=floor, mdd=m,
                screen_cost=screen_cost, cost=cost, seconds=time.time() - t0, threads=torch.get_num_threads())


# a decided table's verdicts (bench/pick.py reads them back for the README's overview)
OUR_BEST, LEVEL, BEHIND_OUR_BEST, OURS_AHEAD, OURS_BEHIND, ANOTHER_SDE = (
    "our best", "level", "behind our best", "ours ahead", "ours behind", "another SDE")
# how "ours behind" goes on where the anchor itself lies below the converged process (_verdict),
# or, an anchor of another SDE, below its own process at the limit's calls
BELOW_CONVERGED = "below the converged"
BELOW_OWN_CONVERGED = "below its own converged"


def converged_process(kind: str) -> str:
    """The converged process a table of ``kind`` reports beside its rows: "ODE" for
    deterministic samplers, "SDE" for stochastic ones."""
    return "ODE" if kind == "deterministic" else "SDE"


def section_name(name: str, schedule: str, kind: str, nfe: int, yardstick: str) -> str:
    """The page section of a decided table (bench/pick.py parses these names back)."""
    return f"bench-decided-{name}-{schedule}-{kind}-nfe{nfe}" + ("" if yardstick == "data" else f"-{yardstick}")


def same_process(r: dict, mine: dict) -> bool:
    """Whether row ``r`` is scored against the process our best entry ``mine`` is: always, but
    on a path table (rows with a "process"), which scores each row against its own process's
    solution on the path: a row of another SDE solves another problem there, and its distance
    ranks nothing against ours (a process with less noise lies nearer its own solution)."""
    return r.get("process") == mine.get("process")


def _below_converged(r: dict, converged: Optional[dict], seeds: int) -> Optional[Tuple[float, float]]:
    """How far row ``r`` lies below the converged process's own score, paired per seed
    (converged minus row), when it does beyond the paired spread; else None. Only a table
    scored by the data has that score (``converged["values"]``, :func:`run_table`): an exact
    solve of the process the rows discretise, so a row called below it is nearer the data
    through its error, not its accuracy. A row of another process (a noise window, another
    noise function, k-diffusion's SDE samplers on a flow model: ``r["of_converged"]`` false)
    converges elsewhere, and its place against that score says nothing of its error: it is
    measured against its own process's score instead, where the table has it
    (``r["own_converged"]``, :func:`own_converged_scores`), else None."""
    per = (converged or {}).get("values") if r.get("of_converged") else r.get("own_converged")
    d = _converged_minus(r, per)
    return d if d is not None and d[0] > 0 and called(*d, seeds, KID_RESOLUTION) else None


def _converged_minus(r: dict, per: Optional[Dict[int, float]]) -> Optional[Tuple[float, float]]:
    """A converged process's score minus row ``r``'s, paired over the seeds (``per``: the
    process's score per seed), mean and spread; None when either lacks a seed."""
    if not per or not all(s in r["values"] for s in per):
        return None
    return mean_sd([per[s] - r["values"][s] for s in per])


def _verdict(r: dict, mine: dict, seeds: int, converged: Optional[dict] = None, process: str = "ODE") -> str:
    """A row's verdict against our best entry ``mine`` (paired, :func:`called`). An anchor
    ahead of ours that itself lies below the converged process (``converged``, a table scored
    by the data; ``process`` "ODE" or "SDE") is still "ours behind", with how far below it
    lies: it leads through its error."""
    if r is mine:
        return OUR_BEST
    if not same_process(r, mine):
        return ANOTHER_SDE
    if r["d_mean"] is None or not math.isfinite(r["d_mean"]):
        return "–"
    if not called(r["d_mean"], r["d_sd"], seeds, KID_RESOLUTION):
        return LEVEL
    if r["source"] == "ours":
        return BEHIND_OUR_BEST
    if r["d_mean"] < 0:
        return OURS_AHEAD
    below = _below_converged(r, converged, seeds)
    if below is None:
        return OURS_BEHIND
    # a row of another SDE lies below its own process (own_converged_scores)
    where = BELOW_CONVERGED if r.get("of_converged") else BELOW_OWN_CONVERGED
    return f"{OURS_BEHIND}; the row {fmt_mean_sd(*below)} {where} {process}"


def _cost_line(t: dict) -> str:
    cost, sc = t["cost"], t["screen_cost"]
    runs = cost["runs"] + sc["runs"]
    sample_calls = cost["sample_calls"] + sc["sample_calls"]
    secs = cost["seconds"] + sc["seconds"]
    cpu = cost["cpu"] + sc["cpu"]
    per = 1e3 * cpu / sample_calls if sample_calls else None
    if not runs:  # a rewrite from the cache: what the measuring call took is not known here
        return (f"all {cost['cached'] + sc['cached']} runs read from the cache (measured by an earlier call of "
                "the same command; the cost of a cell from an empty cache: see the intro above)")
    line = (f"{runs} runs computed ({cost['cached'] + sc['cached']} from the cache): "
            f"{sample_calls / 1e6:.2f} M sample-calls (sample x model call) in {secs / 60:.1f} min wall, "
            f"{cpu / 60:.1f} min CPU, {t['threads']} torch thread(s) on a shared machine")
    if per:
        # CPU time, not wall time, so the estimate does not depend on the other jobs of the
        # moment; two free cores run two seeds at once (or two threads): half of it
        line += (f"; {per:.1f} CPU-ms per sample-call; the whole cell from an empty cache: about "
                 f"{_full_cost(t) * per / 1e3 / 60 / 2:.0f} min on 2 free cores")
    return line


def _full_cost(t: dict) -> float:
    """Sample-calls of the whole cell (screening, full runs and a limit table's limits) from
    an empty cache."""
    full = sum(r["calls"] for r in t["rows"]) * t["samples"] * len(t["seeds"])
    screened = len(t["screened"]) * t["nfe"] * t["screen_samples"]
    return full + screened + _limit_cost(t)


def _limit_cost(t: dict) -> float:
    """Sample-calls of the limits a limit table scores against (:mod:`.limits`): per seed the
    ODE limit of every latent and its half-step check, or the shared SDE limit and each other
    stochastic row's own (the screened-out anchors' own limits at the screening size aside),
    on a path table also the between-steps solve of the first seed; of a table scored by the
    data, the converged ODE or SDE it reports."""
    seeds, n = len(t["seeds"]), t["samples"]
    steps = ode_steps(t["model"].model_type)
    per_latent = 4 * steps + 1  # RK4 steps and the final denoising call (Yardstick.ode_limit)
    if t.get("yardstick", "data") == "data":  # only the converged processes it reports
        if not t.get("converged"):
            return 0.0
        if t["kind"] == "deterministic":
            return seeds * n * per_latent
        return seeds * n * LIMIT_CALLS * (1 + sum(1 for r in t["rows"] if r.get("own_converged")))
    if t["kind"] == "deterministic":
        return seeds * (n * per_latent + min(ODE_CHECK, n) * (4 * (steps // 2) + 1))
    own = [r for r in t["rows"] if (r["label"], r["source"]) not in SHARED_PROCESS]
    if t["yardstick"] == "path":  # each process on the table's paths, the shared one also at half the calls
        between = n * PATH_CALLS if t.get("between") else 0
        return seeds * n * (PATH_CALLS * (1 + len(own)) + PATH_CALLS // 2) + between
    return seeds * n * LIMIT_CALLS * (1 + len(own))


def _floor_text(t: dict) -> str:
    if t.get("yardstick", "data") == "data":
        return f"{t['model'].metric} of {t['samples']} real training images vs the held-out reference"
    if t["kind"] == "deterministic":
        steps = ode_steps(t["model"].model_type)
        return (f"RMS ×10³ between the {steps}- and {steps // 2}-step RK4 limits on {ODE_CHECK} latents "
                "per seed: the limit's own uncertainty")
    if t["yardstick"] == "path":
        return (f"RMS ×10³ between the shared SDE's {PATH_CALLS}- and {PATH_CALLS // 2}-call solutions on the "
                "same paths: the limit's own uncertainty")
    return f"KID of two independent {LIMIT_CALLS}-call draws of the shared SDE limit, seeds s and s + 1"


def _converged_lines(t: dict) -> List[str]:
    """The converged process's own score on a table scored by the data (none on the others):
    what an exact solve scores, and our best entry's paired distance to it."""
    conv = t.get("converged")
    if not conv:
        return []
    metric = t["model"].metric
    name = f"**converged {converged_process(t['kind'])}**"
    if t["kind"] == "deterministic":
        what = f"{name} ({metric} of the exact solve from the same latents, bench/limits.py"
    else:
        what = (f"{name} ({metric} of as many {LIMIT_CALLS}-call samples of the full-noise reverse SDE, "
                f"from the same latents, bench/limits.py: the law the rows of that SDE approach")
    lines = [f"- {what}; a row well below it is nearer the data through its error): "
             f"{fmt_mean_sd(*conv['score'])}; paired {t['best_ours']['label']} − it: {fmt_mean_sd(*conv['delta'])}"]
    own = [r for r in t["rows"] if r.get("own_converged")]
    if own:
        lines.append(f"- **own converged SDEs** (the anchors ahead of ours that discretise another SDE, a noise "
                     f"window or another noise function: {metric} of each at {LIMIT_CALLS} calls from the same "
                     "latents, bench/limits.py; a row well below its own is nearer the data through its error): "
                     + "; ".join(f"{r['label']} ({r['source']}) "
                                 f"{fmt_mean_sd(*mean_sd(list(r['own_converged'].values())))}" for r in own))
    return lines


# the room line's count (bench/pick.py reads it back for the README's advice)
ROOM = "the exact solve ahead of"


def _room_lines(t: dict) -> List[str]:
    """On a table scored by the data (none on the others): the converged process against each
    kept anchor of that process, paired. Our best entry discretises that process; as its
    error shrinks it approaches the converged process's score, so it can be shown ahead of an
    anchor by its accuracy only where the exact solve itself is ahead of it beyond the paired
    spread; where the exact solve is level with the anchors, the yardstick cannot rank a more
    accurate solve above them at these seeds (a row may still lead through its error). The
    anchors of another process (a noise window, another noise function) are not counted."""
    conv = t.get("converged")
    if not conv or not conv.get("values"):
        return []
    per, s = conv["values"], len(t["seeds"])
    paired = [(r, _converged_minus(r, per)) for r in t["rows"] if r["source"] != "ours" and r.get("of_converged")]
    anchors = [(r, d) for r, d in paired if d is not None]
    if not anchors:
        return []
    parts, ahead = [], 0
    for r, (d_mean, d_sd) in anchors:
        lead = d_mean < 0 and called(d_mean, d_sd, s, KID_RESOLUTION)
        ahead += lead
        parts.append(f"{r['label']} ({r['source']}) {fmt_mean_sd(d_mean, d_sd)}" + (" ahead" if lead else ""))
    process = converged_process(t["kind"])
    return [f"- **room** (the converged {process} minus each kept anchor of that {process}, paired: a solve of "
            f"the {process} can be shown ahead of an anchor by its accuracy only where its exact solve is, "
            f"negative beyond the paired spread): {ROOM} {ahead} of {len(anchors)} kept anchors of it; "
            + "; ".join(parts)]


def _unrelated_lines(t: dict) -> List[str]:
    """A path table's other end of the scale (none on the others): where a sampler that has
    lost its path scores."""
    if not t.get("unrelated"):
        return []
    return [f"- **unrelated samples** (RMS ×10³ between the shared SDE's {PATH_CALLS}-call solutions of seeds s "
            f"and s + 1: other latents and paths, the same law; a row near it has lost its path and the path "
            f"cannot rank it): {fmt_mean_sd(*t['unrelated'])}"]


def _between_lines(t: dict) -> List[str]:
    """A path table's part of the distance that the path between the steps leaves (none on the
    others): a floor for every row of the shared SDE that reads the path at those sigmas."""
    b = t.get("between")
    if not b:
        return []
    above = f"{b['label']} (ours) {b['ours']:+.3g}"
    if b["anchor"] is not None:
        above += f", the nearest anchor of that SDE, {b['anchor'][0]} ({b['anchor'][1]}), {b['anchor'][2]:+.3g}"
    return [f"- **between the steps** (seed {b['seed']}: the shared SDE solved at the path solution's "
            f"{PATH_CALLS} calls on the paths known only at the {b['sigmas']} sigmas of {b['label']}, "
            f"bench/limits.py; the part of a row's distance that no use of its model calls removes): "
            f"{b['value']:.3g}; above it on that seed: {above}"]


def _settings_lines(t: dict) -> List[str]:
    """The settings our rows ran (their menu entries' at the time of the run), so that a table
    stays readable after a menu entry's settings change (a table written before this line
    existed ran the settings the intro names)."""
    ours = [r for r in t["rows"] if r.get("settings") is not None]
    if not ours:
        return []
    text = "; ".join(f"{r['label']} " + (fmt_settings(dict(sorted(r["settings"].items()))) or "(the sampler's defaults)")
                     for r in sorted(ours, key=lambda r: r["label"]))
    return [f"- settings of our rows: {text}"]


def table_section(t: dict, command: str, cost: Optional[str] = None) -> str:
    """The markdown section of one decided cell (``cost``: the cost line to print instead of
    this call's, :func:`_measuring_call`)."""
    model, seeds = t["model"], t["seeds"]
    s = len(seeds)
    metric = model.metric
    mine = t["best_ours"]
    head = [f"### {model.title}, `{t['schedule']}`, NFE {t['nfe']}, {t['kind']} samplers", "",
            f"Command: `{command}` ({t['samples']} samples per seed, seeds {', '.join(map(str, seeds))}; "
            f"screening: {t['screen_samples']} samples of seed 0).", "",
            f"- **floor** ({_floor_text(t)}): {fmt_mean_sd(*t['floor'])}",
            *_converged_lines(t),
            *_room_lines(t),
            *_unrelated_lines(t),
            *_between_lines(t),
            f"- **minimum detectable difference** (t(0.95, {s - 1}) × pooled paired spread / √{s}): "
            f"{t['mdd']:.3g}",
            f"- cost: {cost or _cost_line(t)}",
            *_settings_lines(t), "",
            f"| solver | source | calls | {metric} (mean ± spread) | paired Δ = {mine['label']} − row | verdict |",
            "|---|---|---:|---:|---:|---|"]
    # the models' further measurements (accuracy under guidance), where the runs recorded them
    extra = sorted(set().union(*(r.get("extras") or {} for r in t["rows"])))
    if extra:
        head[-2] += "".join(f" {n} (mean ± spread) |" for n in extra)
        head[-1] += "---:|" * len(extra)
    rows = sorted(t["rows"], key=lambda r: _finite(r["mean"]))
    process = converged_process(t["kind"])
    for r in rows:
        delta = "–" if r["d_mean"] is None else fmt_mean_sd(r["d_mean"], r["d_sd"])
        more = "".join(f" {fmt_mean_sd(*r['extras'][n]) if n in (r.get('extras') or {}) else '–'} |" for n in extra)
        head.append(f"| {r['label']} | {r['source']} | {r['calls']} | {fmt_mean_sd(r['mean'], r['sd'])} | {delta} | "
                    f"{_verdict(r, mine, s, t.get('converged'), process)} |" + more)
    kept = {(r["label"], r["source"]) for r in t["rows"]}
    out = [f"{lab} ({src}) {v:.3g}" + ("" if (lab, src) in kept else " (dropped)") for lab, src, v in t["screened"]]
    head += ["", f"Screening ({metric}, {t['screen_samples']} samples, seed 0): " + "; ".join(out) + "."]
    return "\n".join(head)


INTRO = """## Decided tables (trained models)

Written by `python -m seeds_samplers bench` for the trained models (`digits-eps`, `digits-flow`,
`patches-eps`, `patches-flow`: eps and rectified-flow U-Nets on each dataset); each table names
its command. Metric: KID × 1,000 (`bench/decide.py`,
`digits/fd.py`: the unbiased kernel distance of Binkowski et al. 2018 with the cubic kernel, on
the classifier's 128-d penultimate features scaled by one number, the reference's RMS
feature) between the samples of each seed (2,000 by default, `--trained-samples`; each table
states its count) and the held-out images (1,000 held-out digits; 3,645 held-out patches). Paired: every sampler of a table starts from the same latents and
draws the same noise per seed; the Δ column is our best entry minus the row, per seed, then
mean ± spread over the seeds (negative: ours better). A difference is called only when its mean
exceeds t(0.95, S − 1) × its spread / √S (one-sided 95 %, S seeds) and 0.01 (below that, two
implementations of the same update differ by round-off only); the table's *minimum
detectable difference* is the same bound with the pooled spread of its paired differences.
Seeds: 3 by default (`--seeds`); a table's command line names the seeds it ran, and the README's
overview marks a cell run at more (5 seeds: t(0.95, 4) / √5 = 0.95 against t(0.95, 2) / √3 =
1.69 times the spread, so a difference of the same spread is called at about half the size).
The *floor* is KID of as many real training images against the same reference. A deterministic
table also gives the KID of the *converged ODE* from the same latents (the exact solve that its
rows approximate; bench/limits.py) and our best entry's paired distance to it: a solver that
scores well below it is nearer the data through its error, not its accuracy. A stochastic
table (one written since it existed) gives the KID of the *converged SDE* beside it: as many
samples per seed of the full-noise reverse SDE at its limit's 60 calls from the same latents
(bench/limits.py), the law the rows of that SDE approach, and our best entry's paired distance
to it. Near that law the KID to the data separates two solvers to first order in the small
difference of their laws, along the model's own distance to the data, while their KID to the
law itself is of second order: a row below the converged SDE is nearer the data through its
error. Where an anchor of that process ahead of our best lies below the converged process
itself (paired over the seeds, beyond its spread), its verdict says so ("ours behind; the row …
below the converged ODE"): it leads through its error. An anchor ahead of our best that
discretises another SDE (ComfyUI's `sa_solver` with its noise window, its `er_sde` with its
noise function) is set against its own process instead: the same anchor at the limit's 60
calls from the same latents (the table's "own converged SDEs" line; "below its own converged
SDE"; tables written since it existed). The *room* line (tables written or rewritten since it
existed) sets the converged process against each kept anchor of that process, paired: as our
entries' error shrinks they approach the converged process's score, so an entry can be shown
ahead of an anchor by its accuracy only where the exact solve itself is ahead of it beyond the
spread; where the exact solve is level with an anchor, no solver of that process can be called
ahead of it at these seeds but through its error. A table rewritten from the cache alone (no
run computed) keeps the command and cost of the call that measured it. Anchors: a
screening pass (400 samples, seed 0) ranks the anchors of the table's kind and keeps the
best 4; the full runs cover those and our menu entries of that kind. Per-seed results are
cached under `~/.cache/seeds_samplers/bench` (`SEEDS_SAMPLERS_CACHE`), keyed by model
weights, schedule, seed, sampler and settings, NFE, sample count and code version (an
anchor's source file; for ours, its output on a small exact problem at the cell's own sigmas,
so that a change to one solver recomputes only the rows it changes). Each table's settings line
gives our rows' settings as measured, with every parameter the menu entries of a sampler differ
in: an `ss_er_sde` row ("ER-SDE-Solver") without `midpoint_above_h` there was measured before
that parameter's default became 0.55, with the midpoint rule on every step of an SD-type model
(the default changes no step of `karras` at 8 steps nor of `normal`, and nothing on flow models;
its effect elsewhere is in docs/sweeps.md, ER-SDE's expansion by step length and the hosts'
default schedules, until the table is run again).

Cost (measured with one torch thread, batches of 250, channels-last): the digits U-Net takes
4.7 CPU-ms per sample and model call, the patches U-Net 1.0. A stochastic cell at NFE 10 (our
4 stochastic menu entries and 4 kept anchors, 3 seeds × 2,000 samples, 10 anchors screened at
400) is about 0.52 M sample-calls: about 40 CPU-minutes on a digits model (20 minutes on 2
free cores), 9 on the patches model; half that at 1,000 samples. Each table's own cost line gives what its run took.

Under classifier-free guidance (`digits-cfg1`, `digits-cfg3`, `digits-cfg6`, asked for by name
with `--models`): the class-conditional digits U-Net (`digits-cond`, SD's discrete eps schedule)
guided as the hosts guide it (one batched conditional / unconditional call per model call,
`uncond + s (cond − uncond)`, the unconditional half skipped at scale 1), the requested digits
0..9 in turn, and the metric the KID × 1,000 between the samples of each requested digit and the
held-out digits of that class (100 per class), averaged over the classes (the guidance page's
metric, docs/guidance.md); its floor the same for real training digits. Beside it, the
accuracy: the fraction of samples the digit classifier reads as the requested digit (a sampler
could lower the KID by guiding less; a table run before the column existed shows none). A
guided call costs about twice an unguided one: 8.4–9.0 CPU-ms per sample-call, a stochastic
cell at 10 calls with 500 samples per seed about 24 CPU-minutes (12 on 2 free cores).

Under guidance the KID to the held-out digits does not rank solvers by accuracy (the converged
guided processes themselves sit far from the data; a coarse solve that guides less scores
better: docs/sweeps.md). Tables marked "to the ODE limit" / "to the SDE limit"
(`--yardstick limit`, `bench/limits.py`) measure the solve instead: deterministic samplers by
the mean per-sample RMS pixel distance (× 1,000, pixels in [−1, 1]) to the converged guided
probability-flow ODE from the same latent (RK4 in half-log-SNR, 24 steps, then the final
denoising call at the schedule's last sigma); stochastic samplers by the KID × 1,000 (the
same classifier features) to 60-call samples of the process they discretise, drawn from
independent latents and noise, per requested digit and averaged over the digits like the
data KID (on all digits together the classes' own spread hides the differences within a
class, and the exactly balanced draws are not the independent ones the estimator assumes).
Samplers of the full-noise reverse SDE without a noise window share one limit (computed with
k-diffusion's `dpmpp_2m_sde`): our SEEDS-1/3 and ER-SDE entries, `dpmpp_2m_sde`,
`dpmpp_3m_sde`, `dpmpp_sde`, `euler_ancestral`, ComfyUI's `seeds_2`, `seeds_3`,
`dpmpp_2m_sde_heun`; the others (our SEEDS-2 with its noise window, ComfyUI's `sa_solver`
with its noise window, ComfyUI's `er_sde` with its own noise function) are measured against
themselves at 60 calls. On the flow models k-diffusion's SDE samplers, handed the flow sigmas
as the hosts hand them, inject noise by their VE formulas and converge to another law than the
model's (`tests/test_limits.py`); there the shared limit is `dpmpp_2m_sde` run in the model's
VE variables (x / (1 − σ) at σ / (1 − σ), the process our samplers and ComfyUI's discretise),
and k-diffusion's SDE samplers are measured against themselves. Their floors: the RK4 limit
against its half-step solve; two independent draws of the shared SDE limit. A limit costs
97 calls per latent (the ODE) or 60 per sample and process (the SDE) once, then comes from the
cache: the first limit tables, at 500 samples × 3 seeds on one thread of the shared machine,
took 44.5 CPU-minutes (`digits-cfg3`, deterministic, 10 calls, with the ODE limits), 52.6
(`digits-cfg3`, stochastic, 10 calls, with the shared and the anchors' own SDE limits) and 19.1 (`digits-eps`,
deterministic, 10 calls).

Tables marked "to the SDE path" (`--yardstick path`, stochastic samplers) give the stochastic
samplers the ODE tables' per-sample resolution: every sampler of the table is driven by the
same Brownian path per sample (the pack's Brownian tree in log sigma, one path per sample and
seed, the same whatever the steps), and scored by the mean per-sample RMS pixel distance (× 1,000)
to the solution of its process from the same latent on the same path: the process's solver at
240 calls (the shared process: k-diffusion's `dpmpp_2m_sde` on karras-spaced sigmas from the
table's first sigma to the sigma of its final denoising call, on the flow models on `simple`
from σ = 1 to 0: the table's own schedule keeps its long steps at any count, such as the last
step of `normal`, 4–5 times the one before in half-log-SNR, and the solution would carry their
error; the others: themselves, on the table's schedule, which may define their process, as a
noise window does). A
consistent solver converges to that solution when it reads the path at the same sigmas (every
sampler reads it at the model's own; on the flow models the shared limit, run in the VE
variables, does too: a path read at other times is another Brownian motion), and
the pathwise distance bounds the Wasserstein-2 distance between the two laws, so it resolves
the differences the KID to the law cannot once every solver is near it. Its floor: the shared
process's 240-call solution against its 120-call one on the same paths; at the other end of the
scale, *unrelated samples*: the shared process's solutions of two seeds (other latents, other paths,
the same law), where a sampler that has lost its path scores. Between the two, *between the
steps* (a table written since it existed; first seed only): the shared process solved the same
way on the paths known only at our best entry's own sigmas (linearly interpolated in log sigma
between them, their conditional mean): every sampler reads the path through one increment per
step, and this much of its distance is the path inside the steps, which no use of its model
calls recovers; what a row lies above it is, roughly, what a better solver could still remove. It compares solvers of
one process; a row of another process (ComfyUI's `er_sde`, whose noise function injects less
noise; `sa_solver`, which injects noise only in a middle window; a noise window of ours) is
scored against its own, and a process with less noise lies nearer its own solution at the same
calls: such a row is printed with its paired difference but gets no verdict against our best
("another SDE"), and the minimum detectable difference pools only the rows that do (the KID
tables compare the different processes' samples).

The same yardstick serves the unguided models (`--yardstick limit` with `digits-eps`,
`digits-flow`, `patches-eps`, `patches-flow`; the patches' KID on the patch classifier's
features). On the flow models every sampler steps to sigma = 0 (the velocity is finite there), so the
ODE limit is the path's end x(0): classical RK4 in sigma itself, 64 equal steps from the
samplers' first sigma (just below 1, where the half-log-SNR is −∞) to sigma = 3.4 × 10⁻⁴,
then the denoiser there (x(0) to O(sigma²)); 257 calls per latent. Its floor, the 64-step limit
against the 32-step one, is printed with each table. The first flow limit tables (500 samples × 3
seeds, one thread of the shared machine, with their limits) took 31.8 CPU-minutes (`digits-flow`,
10 calls) and 8.4 (`patches-flow`, 10 calls).

Our rows are the menu entries of the table's kind, the further entries (`ss_er_sde_3m`,
stochastic; `ss_er_sde_ode` and `ss_ipndm_2m`, deterministic; README table) included. iPNDM 2M
was added with the guided limit tables at 5 calls and CFG 6: deterministic tables that show no
iPNDM 2M row were measured before it existed (their other rows are unchanged by it).

The feature networks: for the digits, the digit classifier (`digits/classifier.py`, held-out
accuracy in `digits/weights/classifier.json`); for the patches (16x16 RGB patches of the six
colour photographs that ship inside scikit-image, `digits/data.py`), the same classifier
architecture trained to tell which photograph a patch comes from
(`python -m seeds_samplers train-digits --dataset patches --kind classifier`, held-out
accuracy 0.954, `digits/weights/patches-classifier.json`). The patches' held-out set is a
quarter of each photograph's 32x32 blocks, so the training and held-out patches differ
in content as well as in draw: their floor is above zero and varies with the subset.

The FD sections of the trained models further down (192 samples per seed, floor 43 ± 13)
are the earlier, coarser measurement, and their ER-SDE-Solver rows ran its earlier menu
settings (sigma expansion, order 3, noise from 20 % of the steps); a decided table supersedes
them where both exist. A decided table written since the line existed lists the settings
its rows of ours ran ("settings of our rows"), so that it stays readable when a menu entry
changes. The ER-SDE-Solver rows of the decided tables run its current menu
settings (φ = s², order 2, `expansion=auto`, the corrector, `long_step_ratio` 3; 1.25 at
order 3; neither ratio acts on a step of `karras` from 7 steps on, so the karras tables
measured before the ratios are as the current entries draw them; docs/sweeps.md, ER-SDE on
long steps and ER-SDE's long-step rule in distribution); those of the mixture
sections (the W2 tables) ran the settings before the corrector (the midpoint rule without it, i.e.
`dpmpp_2m_sde`): the current ones on the mixtures are in docs/sweeps.md (ER-SDE corrector)."""


def _measuring_call(t: dict, doc: Optional[Path], section: str) -> Optional[Tuple[str, str]]:
    """The command and cost line the page's section states, when this call computed no run of
    the cell (a rewrite from the cache, e.g. for a line added since): every number of the
    rewrite is one that call measured, so its command (which reproduces the table) and its cost
    stay on the page. None otherwise."""
    if doc is None or not doc.is_file() or t["cost"]["runs"] or t["screen_cost"]["runs"]:
        return None
    text = doc.read_text()
    start, end = text.find(f"<!-- {section}:start -->"), text.find(f"<!-- {section}:end -->")
    if start < 0 or end < 0:
        return None
    body = text[start:end]
    command, cost = re.search(r"^Command: `([^`]+)`", body, re.M), re.search(r"^- cost: (.+)$", body, re.M)
    return (command.group(1), cost.group(1)) if command and cost else None


def write_decided(name: str, schedule: str, budgets: Sequence[int], kinds: Sequence[str], seeds: Sequence[int],
                  samples: int, screen_samples: int, keep: int, comfy: bool, command: str, out: Path,
                  doc: Optional[Path], header: str, lock: Callable, log: Callable[[str], None] = print,
                  yardstick: str = "data") -> None:
    """Run the decided cells of one model and schedule and write each as it finishes
    (to ``out`` and, with ``doc``, to its own section of the page, under ``lock``)."""
    from .report import update_section

    for nfe in budgets:
        for kind in kinds:
            t = run_table(name, schedule, nfe, kind, seeds, samples, screen_samples, keep, comfy, log, yardstick)
            section = section_name(name, schedule, kind, nfe, yardstick)
            command_cost = _measuring_call(t, doc, section)
            body = table_section(t, *(command_cost or (command,)))
            (out / f"{section}.md").write_text(body + "\n")
            log("\n" + body + "\n")
            if doc is not None:
                with lock(doc):
                    update_section(doc, "bench-decided", INTRO, header)
                    update_section(doc, section, body, header)
