"""Training AMED predictors by distillation (Zhou et al., CVPR 2024, arXiv 2312.00094,
Sec. 3.3 and Algorithm 1; restated in docs/amed.md). The command line on the test models,
``python -m seeds_samplers amed-train``, is :mod:`seeds_samplers.bench.amed_train`.

* Teacher: the same ODE on the student grid refined uniformly in lambda, ``teacher_substeps``
  third-order variable-step Adams-Bashforth steps in sigma per student interval (1 model
  call each; no AFS, no predictor). Its
  states at the student's grid points are the targets; its evaluations at those points
  (denoised estimate and bottleneck feature) are reused by teacher-forced students.
* Student: per interval j one AMED step (:class:`~seeds_samplers.samplers.amed.AMEDCore`),
  loss = squared L2 distance to the teacher state at sigma_{j+1} in the model's own
  variables, summed over pixels and averaged over the batch, times the interval's weight
  (``loss``: ``"paper"`` weighs every interval 1, the paper's sum; ``"relative"`` divides
  each by the untrained student's held-out loss on that interval; ``"final"`` keeps the last
  interval only; see :func:`interval_weights`); gradients flow through the
  frozen denoiser's second evaluation D(x_m, a sigma_m) and through sigma_m(r); one Adam
  step per interval (NaN gradients set to 0, +-inf clipped to +-1e5).
* Single-step students (amed, euler, dpm_2) start every interval from the teacher state
  (teacher forcing); multistep students (ipndm, deis, dpmpp_2m) continue from their own
  state and history.
* Data: only Gaussian initial latents (and the user's conditioning, through the model).

What makes a run safe to ship (docs/amed.md, "Training"):

* trajectories are generated batch by batch and streamed: with one epoch nothing is kept;
  with more, each teacher batch is spooled to a temporary file, so memory does not grow
  with their number;
* the learning rate follows a cosine schedule over all optimiser rounds;
* a held-out set of trajectories (its own seed) is scored before training (the untrained
  predictor, r = 1/2: the base solver) and ``evals`` times during it; the predictor with
  the lowest held-out loss is kept, so the result is never worse than its start on those
  trajectories, and ``improved`` in the result says whether any trained state beat it (by
  more than :data:`MIN_GAIN`, relative);
* under ``torchrun`` (``torch.distributed`` initialised) every batch and the held-out set
  are split across the ranks and the predictor is wrapped in DistributedDataParallel:
  with the same seeds and total batch the loss curve is the single-process one to round-off.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..samplers.amed_core import AMEDCore, MAX_ORDERS, check_solver_config, feature_positions
from ..samplers.amed_capture import capture_for
from ..samplers.amed_predictor import AMEDPredictor
from ..samplers.lagrange import rhoab_coefficients
from ..samplers.model_types import ModelType, resolve_model_type
from ..samplers.run import check_latent, check_sigmas
from .storage import FEATURE_MODES

__all__ = ["TrainSettings", "TrainResult", "TeacherBatch", "teacher_batch", "train_predictor", "distillation_loss",
           "student_nfe", "schedule_sigmas", "RECIPES", "TEACHER_SUBSTEPS", "LR_SCHEDULES", "Progress",
           "not_improved_message", "tqdm_progress", "MIN_GAIN", "LOSSES", "interval_weights"]

SINGLE_STEP = ("amed", "euler", "dpm_2")
# Teacher steps per student interval: one default for the trainer, its command, the ComfyUI
# node and the evaluation (the teacher's own error at 8 is in docs/amed.md).
TEACHER_SUBSTEPS = 8
LR_SCHEDULES = ("cosine", "constant")
# How the per-interval squared state errors are weighted (interval_weights): the paper's sum,
# each divided by the untrained student's held-out error there, or the last state's alone.
LOSSES = ("paper", "relative", "final")
# a trained state replaces the untrained one only if its held-out loss is lower by this fraction
MIN_GAIN = 1e-3
# The official recipe per student (the AMED README's training commands): AMED-Solver with
# scale_dir 0.01, no time scale, on a schedule uniform in VP time; the iPNDM plugin with
# max_order 4, the polynomial schedule rho = 7 (EDM's), scale_dir 0.01, scale_time 0.2;
# AFS for both. The other plugins keep the paper's head ranges on the logSNR grid. The
# official teachers (Heun / iPNDM with 1-2 inserted points) are replaced by the finer
# Adams-Bashforth teacher above.
RECIPES: Dict[str, Dict[str, Any]] = {
    "amed": dict(schedule="vp_time_uniform", afs=True, scale_dir=0.01, scale_time=0.0, max_order=1),
    "ipndm": dict(schedule="edm_rho", afs=True, scale_dir=0.01, scale_time=0.2, max_order=4),
    "deis": dict(schedule="logsnr_uniform", afs=True, scale_dir=0.01, scale_time=0.0, max_order=3),
    "dpmpp_2m": dict(schedule="logsnr_uniform", afs=True, scale_dir=0.01, scale_time=0.0, max_order=2),
    "dpm_2": dict(schedule="logsnr_uniform", afs=True, scale_dir=0.01, scale_time=0.0, max_order=1),
    "euler": dict(schedule="logsnr_uniform", afs=True, scale_dir=0.01, scale_time=0.0, max_order=1),
}

# progress(phase, done, total, loss): phase names one long phase ("held-out teacher",
# "epoch 1/3", ...); done/total count its batches; loss is the last batch's (None if none)
Progress = Callable[[str, int, int, Optional[float]], None]


@dataclass
class TrainSettings:
    """What to train (every field is stored in the predictor's metadata).

    Attributes:
        solver: ``"amed"`` (AMED-Solver) or a plugin base (``dpm_2``, ``euler``, ``ipndm``,
            ``dpmpp_2m``, ``deis``).
        afs: analytical first step (saves one model call).
        feature_mode: ``"bottleneck"`` (U-Net middle-block feature) or ``"time"`` (zero
            feature: a learned per-step schedule; for DiT / flow transformers and speed).
        scale_dir: direction-scale range half-width (0 = no head; paper 0.01).
        scale_time: time-scale range half-width (0 = no head; paper 0 or 0.2).
        max_order: ipndm / deis history length (1-4), dpmpp_2m order (1-3).
        prediction: dpmpp_2m: ``"data"`` or ``"noise"``.
        lower_order_final: dpmpp_2m: lower orders on the last sub-steps.
        teacher_substeps: teacher steps (1 model call each) per student interval.
        trajectories: number of training trajectories (rounded up to whole batches).
        batch: trajectories per optimiser round (the total over all ranks).
        epochs: passes over the training trajectories (teacher computed once, spooled).
        lr: Adam learning rate (paper 5e-3) at the start of the schedule.
        lr_schedule: ``"cosine"`` (to 0 over all rounds) or ``"constant"``.
        seed: seed of the training latents and of the predictor's initialisation.
        holdout: held-out trajectories (seed + 1) that pick the best predictor.
        evals: held-out evaluations spread over training (besides the one before it).
        loss: weighting of the per-interval state errors, in training and in the held-out
            selection (:func:`interval_weights`): ``"paper"`` (the paper's sum, Sec. 3.3),
            ``"relative"`` or ``"final"``.
    """

    solver: str = "amed"
    afs: bool = True
    feature_mode: str = "bottleneck"
    scale_dir: float = 0.01
    scale_time: float = 0.0
    max_order: int = 3
    prediction: str = "data"
    lower_order_final: bool = True
    teacher_substeps: int = TEACHER_SUBSTEPS
    trajectories: int = 512
    batch: int = 16
    epochs: int = 1
    lr: float = 5e-3
    lr_schedule: str = "cosine"
    seed: int = 0
    holdout: int = 64
    evals: int = 8
    loss: str = "paper"

    @classmethod
    def recipe(cls, solver: str, **overrides: Any) -> "TrainSettings":
        """The official recipe for ``solver`` (:data:`RECIPES`), with ``overrides``."""
        names = {f.name for f in fields(cls)}
        base = {k: v for k, v in RECIPES[solver].items() if k in names}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(solver=solver, **base)

    def check(self) -> None:
        check_solver_config(self.solver, self.order, self.prediction)
        if self.feature_mode not in FEATURE_MODES:
            raise ValueError(f"feature_mode must be one of {FEATURE_MODES}, got {self.feature_mode!r}")
        for name in ("teacher_substeps", "trajectories", "batch", "holdout", "epochs", "evals"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    @property
    def order(self) -> int:
        return min(self.max_order, MAX_ORDERS["dpmpp_2m"]) if self.solver == "dpmpp_2m" else self.max_order

    @property
    def rounds(self) -> int:
        """Optimiser rounds (batches) per epoch."""
        return max(1, math.ceil(self.trajectories / self.batch))


def student_nfe(n_positive: int, afs: bool, final_denoise: bool) -> int:
    """Model calls of an AMED run over ``n_positive`` positive sigmas."""
    return 2 * (n_positive - 1) - int(afs) + int(final_denoise)


def loss_help() -> str:
    """Each of :data:`LOSSES` in one line, from :func:`interval_weights`'s docstring (its
    summary line and its bullet per choice: one description, kept where the weights are
    computed), for the CLI's help and the ComfyUI node's tooltip."""
    doc = inspect.cleandoc(interval_weights.__doc__ or "").replace("``", "")
    bullets = dict(re.findall(r'^\* "(\w+)": (.*?)(?=^\* |\Z)', doc, re.S | re.M))
    lines = [doc.split("\n", 1)[0]]
    for name in LOSSES:
        text = " ".join(bullets.get(name, "").split())
        lines.append(f"{name}: {text}" if text else name)
    return "\n".join(lines)


def interval_weights(loss: str, untrained: Sequence[float]) -> List[float]:
    """Weights of the per-interval squared state errors (one per AMED interval).

    ``untrained``: the untrained student's (r = 1/2) mean held-out error on each interval.

    * ``"paper"``: 1 each - the paper's loss, the sum over intervals (Sec. 3.3, Algorithm 1).
      Its terms scale with the state (about sigma^2 per pixel for eps models), so the early
      intervals dominate it and the last one, the image, hardly counts.
    * ``"relative"``: 1 / (the untrained error on that interval): every interval counts by
      how much it improves on its start; the untrained loss is the number of intervals.
    * ``"final"``: the last interval only (the state that becomes the image). For multistep
      students (ipndm, deis, dpmpp_2m), which continue from their own states, the gradient
      runs through the whole student trajectory (one optimiser step per batch), so every
      step's r, c, a is trained for the last state; single-step students restart from the
      teacher every interval, so only their last step is trained.
    """
    if loss == "paper":
        return [1.0] * len(untrained)
    if loss == "relative":
        return [1.0 / e if e > 0 else 0.0 for e in untrained]
    if loss == "final":
        return [0.0] * (len(untrained) - 1) + [1.0]
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _ve_call(model: Callable, mt: ModelType, extra_args: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def call(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if mt.is_flow:
            sig = s / (1 + s)
            x = y * (1 / (1 + s)).reshape((-1,) + (1,) * (y.ndim - 1)).to(y.dtype)
        else:
            sig, x = s, y
        out = model(x, sig.to(torch.float32 if y.dtype != torch.float64 else torch.float64), **extra_args)
        return out.to(y.dtype)
    return call


@dataclass
class TeacherBatch:
    """Teacher results on one batch, indexed by the student grid points j = 0..K-1.

    ``y``: VE-equivalent states; ``den``: D(y_j, s_j) (j < K-1); ``feat``: [B, H, W]
    bottleneck features at those evaluations (None without a feature source)."""

    y: List[torch.Tensor]
    den: List[torch.Tensor]
    feat: List[Optional[torch.Tensor]]


def teacher_batch(call: Callable, grid_ve: Sequence[float], y0: torch.Tensor, substeps: int,
                  source: Any = None, order: int = 3) -> TeacherBatch:
    """The teacher: variable-step Adams-Bashforth of order ``order`` in s (rhoAB-DEIS weights,
    float64 on the host) on the grid refined uniformly in lambda, ``substeps`` steps (1 model
    call each) per student interval; no AFS, no predictor."""
    fine: List[float] = []
    for j in range(len(grid_ve) - 1):
        la, lb = -math.log(grid_ve[j]), -math.log(grid_ve[j + 1])
        fine += [math.exp(-(la + (lb - la) * k / substeps)) for k in range(substeps)]
    fine.append(grid_ve[-1])
    b = y0.shape[0]
    ys, dens, feats = [y0], [], []
    y = y0
    hist: List[torch.Tensor] = []
    with torch.no_grad():
        for k in range(len(fine) - 1):
            at_grid = k % substeps == 0
            if source is not None and at_grid:
                source.clear()
            den = call(y, torch.full((b,), fine[k], dtype=torch.float64, device=y.device))
            if at_grid:
                dens.append(den)
                feats.append(source.take() if source is not None else None)
            hist.insert(0, (y - den) * (1.0 / fine[k]))
            del hist[order:]
            nodes = fine[k - len(hist) + 1:k + 1][::-1]
            for c, d in zip(rhoab_coefficients(nodes, fine[k], fine[k + 1]), hist):
                y = y + d * c
            if (k + 1) % substeps == 0:
                ys.append(y)
    return TeacherBatch(ys, dens, feats)


def _sanitize_grads(params) -> None:
    for p in params:
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)


def _interval_losses(net: torch.nn.Module, settings: TrainSettings, call: Callable, grid_ve: Sequence[float],
                     alphas: Sequence[float], tb: TeacherBatch, source: Any,
                     optimizer: Optional[torch.optim.Optimizer],
                     weights: Optional[Sequence[float]] = None) -> List[torch.Tensor]:
    """Run the student over one batch; with an optimiser take one step per interval of
    nonzero weight (on the weighted loss), or, for ``loss="final"`` with a multistep student,
    one step per batch on the last state's error with the gradient through the whole student
    trajectory. ``net`` is the predictor or its DistributedDataParallel wrapper. Returns the
    unweighted per-interval losses (0-dim tensors, this process's rows)."""
    feature_size = getattr(net, "module", net).feature_size
    core = AMEDCore(settings.solver, grid_ve, call, settings.order, settings.prediction, settings.lower_order_final)
    use_feat = settings.feature_mode == "bottleneck"
    single = settings.solver in SINGLE_STEP
    # the last state depends on every step's r, c, a only through the student's own states
    # and history: keep them attached (one graph per batch) instead of a greedy step per interval
    through = optimizer is not None and settings.loss == "final" and not single
    total = 0.0
    y = tb.y[0]
    losses = []
    b = y.shape[0]
    for j in range(len(grid_ve) - 1):
        afs_step = j == 0 and settings.afs
        if single or afs_step or j == 0:
            y_in = tb.y[j] if single else y
            den = None if afs_step else tb.den[j]
            feat = None if (afs_step or not use_feat) else tb.feat[j]
        else:
            y_in = y
            with torch.set_grad_enabled(through):
                if source is not None and use_feat:
                    source.clear()
                den = call(y_in, torch.full((b,), grid_ve[j], dtype=torch.float64, device=y.device))
                feat = source.take() if (source is not None and use_feat) else None
        if feat is not None:
            feat = feature_positions(feat, feature_size)
        with torch.set_grad_enabled(optimizer is not None):
            r, c, a = net(feat, grid_ve[j], grid_ve[j + 1], batch=b)
            dev = y_in.device
            y1, _ = core.step(j, y_in, den, r.to(dev), c.to(dev), a.to(dev))
            diff = (y1 - tb.y[j + 1]) * alphas[j + 1]
            loss = diff.pow(2).flatten(1).sum(1).mean()
        w = 1.0 if weights is None else float(weights[j])
        if through:
            total = total + loss * w
        # a zero-weight interval takes no step: Adam would still move on its momentum
        elif optimizer is not None and w != 0.0:
            optimizer.zero_grad(set_to_none=True)
            (loss * w).backward()
            _sanitize_grads(net.parameters())
            optimizer.step()
        losses.append(loss.detach())
        if through:
            y = y1
            continue
        y = y1.detach()
        core.hist_d = [h.detach() for h in core.hist_d]
        core.hist_s = [h.detach() for h in core.hist_s]
        if core.prev_m is not None:
            core.prev_m, core.prev_lam = [m.detach() for m in core.prev_m], [lm.detach() for lm in core.prev_lam]
    if through:
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        _sanitize_grads(net.parameters())
        optimizer.step()
    return losses


class _Ranks:
    """This process's share of a batch: ``torch.distributed`` when initialised with more
    than one process, else everything. Losses are means over a rank's rows; with equal
    shares the mean over ranks is the mean over the whole batch."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.on = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.on else 0
        self.world = dist.get_world_size() if self.on else 1

    def rows(self, n: int) -> slice:
        if n % self.world:
            raise ValueError(f"a batch of {n} trajectories does not split evenly over {self.world} processes")
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        if not self.on:
            return values
        import torch.distributed as dist

        out = values.detach().to(torch.float64).cpu().clone()
        dist.all_reduce(out)
        return out / self.world


def distillation_loss(predictor: AMEDPredictor, settings: TrainSettings, call: Callable, grid_ve: Sequence[float],
                      alphas: Sequence[float], tb: TeacherBatch, source: Any = None,
                      weights: Optional[Sequence[float]] = None) -> float:
    """Distillation loss of ``predictor`` on a teacher batch (this process's rows): the sum
    over intervals of the squared state errors, each times its weight (:func:`interval_weights`;
    default 1, the paper's loss)."""
    with torch.no_grad():
        per = _interval_losses(predictor, settings, call, grid_ve, alphas, tb, source, None)
    ws = [1.0] * len(per) if weights is None else weights
    return float(sum(float(v) * w for v, w in zip(per, ws)))


class _Spool:
    """Teacher batches of the first epoch, kept for the later ones: in temporary files
    (memory stays flat in the number of trajectories), or nowhere with one epoch."""

    def __init__(self, keep: bool):
        self.dir = tempfile.TemporaryDirectory(prefix="amed-teacher-") if keep else None

    def put(self, i: int, tb: TeacherBatch) -> None:
        if self.dir is not None:
            torch.save({"y": tb.y, "den": tb.den, "feat": tb.feat}, os.path.join(self.dir.name, f"{i}.pt"))

    def get(self, i: int) -> TeacherBatch:
        d = torch.load(os.path.join(self.dir.name, f"{i}.pt"), weights_only=True)
        return TeacherBatch(d["y"], d["den"], d["feat"])

    def close(self) -> None:
        if self.dir is not None:
            self.dir.cleanup()


def not_improved_message(loss_before: float, loss_trained: float) -> str:
    """What the CLI and the ComfyUI node say when no trained state beat the untrained one."""
    return (f"no improvement: held-out loss of the untrained predictor (r = 1/2, the base solver) {loss_before:.5g}, "
            f"best trained state {loss_trained:.5g}; the untrained predictor is no better than the base solver")


@dataclass
class TrainResult:
    """What :func:`train_predictor` returns (unpacks as ``predictor, config, history``).

    ``config['improved']`` is False when no trained state beat the untrained predictor on
    the held-out trajectories; ``predictor`` is then the untrained one."""

    predictor: AMEDPredictor
    config: Dict[str, Any]
    history: List[float]

    def __iter__(self):
        return iter((self.predictor, self.config, self.history))


def train_predictor(
    model: Callable,
    sigmas: Any,
    settings: TrainSettings,
    *,
    prior: Optional[Callable[[int, torch.Generator], torch.Tensor]] = None,
    latent_shape: Optional[Sequence[int]] = None,
    extra_args: Optional[dict] = None,
    model_type: Any = None,
    feature_source: Any = None,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
    progress: Optional[Progress] = None,
    log: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Train an AMED predictor for ``model`` on the grid ``sigmas``.

    Args:
        model: denoiser ``model(x, sigma, **extra_args) -> x0`` (gradients must flow to x).
        sigmas: the sampling schedule (k-diffusion style, may end in 0); its positive part
            is the trained grid.
        settings: :class:`TrainSettings`.
        prior: ``prior(n, generator) -> x_T`` initial latents; default ``sigma_0 * randn``
            of ``latent_shape`` (flow models: the same at sigma_0 ~ 1).
        latent_shape: [C, H, W] for the default prior.
        extra_args: passed to the model (conditioning, CFG, ...).
        model_type: override model-type detection.
        feature_source: bottleneck capture (default: a hook on the model's middle_block).
        device, dtype: where and in which precision latents live.
        progress: :data:`Progress` callback after every batch of every long phase.
        log: a line logger.

    Under ``torchrun`` (an initialised process group) every process calls this with the
    same arguments; each computes its share of every batch.

    Returns a :class:`TrainResult` ``(predictor, config, history)``: the best predictor by
    held-out loss, its metadata (without ``model_family``/``cfg``/``command``, which the
    caller adds) and the per-batch training losses (mean over the whole batch, the weighted
    sum over intervals of ``settings.loss``).
    """
    settings.check()
    extra_args = {} if extra_args is None else extra_args
    values = check_sigmas(sigmas)
    mt = resolve_model_type(model, model_type)
    values = mt.prepare_sigmas(values)
    positive = [s for s in values if s > 0]
    if len(positive) < 2:
        raise ValueError("an AMED predictor needs at least 2 positive sigmas (one AMED step)")
    grid_ve = [mt.ve_sigma(s) for s in positive]
    alphas = [mt.alpha(s) for s in positive]
    device = torch.device("cpu") if device is None else torch.device(device)
    ranks = _Ranks()
    if prior is None:
        if latent_shape is None:
            raise ValueError("give latent_shape or prior")
        shape = tuple(int(v) for v in latent_shape)

        def prior(n: int, g: torch.Generator) -> torch.Tensor:
            return torch.randn((n,) + shape, generator=g, dtype=torch.float64) * positive[0]
    source = None
    if settings.feature_mode == "bottleneck":
        source = feature_source if feature_source is not None else capture_for(model)
    call = _ve_call(model, mt, extra_args)
    say = log if (log is not None and ranks.rank == 0) else (lambda msg: None)
    tell = progress if ranks.rank == 0 else None

    def make_teacher(n: int, gen: torch.Generator) -> TeacherBatch:
        # every process draws the whole batch (the same numbers as one process would) and
        # keeps its rows
        x0 = prior(n, gen)[ranks.rows(n)].to(device, dtype)
        check_latent(x0)
        return teacher_batch(call, grid_ve, x0 * (1.0 / alphas[0]), settings.teacher_substeps, source)

    ctx = source if source is not None else contextlib.nullcontext()
    history: List[float] = []
    evals: List[Dict[str, float]] = []
    t0 = time.time()
    spool = _Spool(settings.epochs > 1)
    with ctx:
        g_hold = torch.Generator().manual_seed(settings.seed + 1)
        hold_batches = []
        n_hold = max(1, math.ceil(settings.holdout / settings.batch))
        if tell:
            tell("held-out teacher", 0, n_hold, None)
        for hi in range(n_hold):
            hold_batches.append(make_teacher(min(settings.batch, settings.holdout - hi * settings.batch), g_hold))
            if tell:
                tell("held-out teacher", hi + 1, n_hold, None)
        feat_size = 64
        last_feat = hold_batches[0].feat[-1]
        if last_feat is not None:
            size = last_feat.shape[-1] * last_feat.shape[-2]
            feat_size = 64 if size >= 64 else size  # larger maps are pooled to 8 x 8
        torch.manual_seed(settings.seed)  # the same initialisation in every process and run
        predictor = AMEDPredictor(feat_size, settings.scale_dir, settings.scale_time).to(device)
        net: torch.nn.Module = predictor
        if ranks.on and settings.loss == "final" and settings.solver not in SINGLE_STEP:
            raise ValueError("loss='final' with a multistep student runs one graph through the whole trajectory; "
                             "it is not supported under torch.distributed yet (use one process)")
        if ranks.on:
            # unused parameters: the feature path at an AFS step and in time-only mode
            net = torch.nn.parallel.DistributedDataParallel(predictor, find_unused_parameters=True)
        opt = torch.optim.Adam(predictor.parameters(), lr=settings.lr, betas=(0.9, 0.999), eps=1e-8)
        total_rounds = settings.rounds * settings.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, (lambda k: 0.5 * (1 + math.cos(math.pi * k / total_rounds))) if settings.lr_schedule == "cosine"
            else (lambda k: 1.0))

        def held_out() -> List[float]:
            """Mean held-out squared state error per interval (unweighted)."""
            rows = torch.tensor([tb.y[0].shape[0] for tb in hold_batches], dtype=torch.float64)
            with torch.no_grad():
                per = torch.tensor([[float(v) for v in _interval_losses(predictor, settings, call, grid_ve, alphas,
                                                                        tb, source, None)]
                                    for tb in hold_batches], dtype=torch.float64)
            return [float(v) for v in ranks.mean((per * rows[:, None]).sum(0) / rows.sum())]

        raw0 = held_out()
        weights = interval_weights(settings.loss, raw0)

        def total(raw: Sequence[float]) -> float:
            return float(sum(w * v for w, v in zip(weights, raw)))

        loss0 = total(raw0)
        # the untrained state wins unless a trained one is lower by more than MIN_GAIN
        # (round-off and a step of size ~lr must not count as learning)
        best = (loss0 * (1.0 - MIN_GAIN), 0, {k: v.clone() for k, v in predictor.state_dict().items()})
        evals.append(dict(round=0, loss=loss0, intervals=raw0))
        say(f"held-out loss before training (r = 1/2, the base method): {loss0:.5g} "
            f"({settings.holdout} trajectories)")
        eval_at = {max(1, round(total_rounds * (k + 1) / settings.evals)) for k in range(settings.evals)}
        done = 0
        g = torch.Generator().manual_seed(settings.seed)
        for epoch in range(settings.epochs):
            phase = f"epoch {epoch + 1}/{settings.epochs}" + (" (teacher + student)" if epoch == 0 else "")
            if tell:
                tell(phase, 0, settings.rounds, None)
            for bi in range(settings.rounds):
                if epoch == 0:
                    tb = make_teacher(settings.batch, g)
                    spool.put(bi, tb)
                else:
                    tb = spool.get(bi)
                losses = _interval_losses(net, settings, call, grid_ve, alphas, tb, source, opt, weights)
                sched.step()
                history.append(float(ranks.mean(torch.stack(losses) @ torch.tensor(weights, dtype=losses[0].dtype))))
                done += 1
                if tell:
                    tell(phase, bi + 1, settings.rounds, history[-1])
                if done in eval_at:
                    raw = held_out()
                    loss = total(raw)
                    evals.append(dict(round=done, loss=loss, intervals=raw))
                    if loss < best[0]:
                        best = (loss, done, {k: v.clone() for k, v in predictor.state_dict().items()})
                    kept = f"best {best[0]:.5g}" if best[1] else f"none below the untrained {loss0:.5g} yet"
                    say(f"round {done}/{total_rounds}: held-out loss {loss:.5g} ({kept})")
    spool.close()
    seconds = time.time() - t0
    loss_last = evals[-1]["loss"]
    trained_best = min(e["loss"] for e in evals[1:]) if len(evals) > 1 else loss0
    improved = best[1] > 0
    if not improved:
        best = (loss0, 0, best[2])
    predictor.load_state_dict(best[2])
    kept_raw = next(e["intervals"] for e in evals if e["round"] == best[1])
    if improved:
        say(f"held-out loss {loss0:.5g} -> {best[0]:.5g} (x {best[0] / loss0:.3f}; kept the state after round "
            f"{best[1]} of {total_rounds}; last {loss_last:.5g}; {seconds:.1f} s)")
    else:
        say("WARNING: " + not_improved_message(loss0, trained_best))
    predictor.eval().requires_grad_(False)
    config: Dict[str, Any] = dict(
        solver=settings.solver, afs=settings.afs, feature_mode=settings.feature_mode,
        feature_size=predictor.feature_size, scale_dir=settings.scale_dir, scale_time=settings.scale_time,
        max_order=settings.order, prediction=settings.prediction, lower_order_final=settings.lower_order_final,
        sigmas=positive, model_type=mt.kind, sigma_min=positive[-1], sigma_max=positive[0],
        teacher=f"AB3 in sigma, {settings.teacher_substeps} steps per interval (uniform in lambda)",
        teacher_substeps=settings.teacher_substeps,
        trajectories=settings.rounds * settings.batch, batch=settings.batch, epochs=settings.epochs,
        lr=settings.lr, lr_schedule=settings.lr_schedule, seed=settings.seed,
        holdout=settings.holdout, holdout_seed=settings.seed + 1, processes=ranks.world,
        loss_before=loss0, loss_after=best[0], loss_last=loss_last, best_round=best[1], rounds=total_rounds,
        improved=improved, loss_ratio=best[0] / loss0 if loss0 > 0 else None,
        heldout_curve=[[e["round"], e["loss"]] for e in evals],
        loss=settings.loss, interval_weights=weights,
        # the held-out error per interval and the paper's loss (their sum), whatever ``loss`` chose by
        heldout_intervals_before=raw0, heldout_intervals_after=kept_raw,
        paper_loss_before=sum(raw0), paper_loss_after=sum(kept_raw),
        train_seconds=round(seconds, 1),
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    predictor.config = dict(config)
    return TrainResult(predictor, config, history)


def tqdm_progress(desc: str = "amed-train") -> Progress:
    """A :data:`Progress` callback drawing one tqdm bar (with ETA) per phase; for the command
    line (the ComfyUI node draws ComfyUI's bar instead)."""
    from tqdm.auto import tqdm

    state: Dict[str, Any] = {"phase": None, "bar": None}

    def update(phase: str, done: int, total: int, loss: Optional[float]) -> None:
        if phase != state["phase"]:
            if state["bar"] is not None:
                state["bar"].close()
            state["phase"], state["bar"] = phase, tqdm(total=total, desc=f"{desc}: {phase}")
        bar = state["bar"]
        bar.update(done - bar.n)
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.4g}")
        if done >= total:
            bar.close()
            state["phase"], state["bar"] = None, None

    return update


def schedule_sigmas(model: Any, schedule: str, steps: int) -> torch.Tensor:
    """``steps`` + 1 sigmas ending in 0: a registered schedule id or ``uniform`` (uniform in
    the model's discrete timesteps, ComfyUI's "simple"/A1111's "Uniform")."""
    from ..samplers.schedules import SCHEDULES, sd_discrete_sigmas

    mt = resolve_model_type(model)
    if schedule == "uniform":
        if mt.sigma_table is None:
            raise ValueError("the uniform schedule needs a model with a discrete sigma table")
        return sd_discrete_sigmas(steps, mt.sigma_table)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; use uniform or one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](steps, mt)
