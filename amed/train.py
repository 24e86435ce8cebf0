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
  variables, summed over pixels and averaged over the batch; gradients flow through the
  frozen denoiser's second evaluation D(x_m, a sigma_m) and through sigma_m(r); one Adam
  step per interval (NaN gradients set to 0, +-inf clipped to +-1e5).
* Single-step students (amed, euler, dpm_2) start every interval from the teacher state
  (teacher forcing); multistep students (ipndm, deis, dpmpp_2m) continue from their own
  state and history.
* Data: only Gaussian initial latents (and the user's conditioning, through the model).

The loss on a fixed held-out batch is measured before and after training, so a run
reports what it gained over the untrained predictor (r = 1/2: the base solver).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from ..samplers.amed_core import AMEDCore, MAX_ORDERS, check_solver_config, feature_positions
from ..samplers.amed_capture import capture_for
from ..samplers.amed_predictor import AMEDPredictor
from ..samplers.lagrange import rhoab_coefficients
from ..samplers.model_types import ModelType, resolve_model_type
from ..samplers.run import check_latent, check_sigmas
from .storage import FEATURE_MODES

__all__ = ["TrainSettings", "TeacherBatch", "teacher_batch", "train_predictor", "distillation_loss",
           "student_nfe", "schedule_sigmas"]

SINGLE_STEP = ("amed", "euler", "dpm_2")


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
        max_order: ipndm / deis history length (1-4), dpmpp_2m order (1-2).
        prediction: dpmpp_2m: ``"data"`` or ``"noise"``.
        lower_order_final: dpmpp_2m: first-order last sub-step.
        teacher_substeps: teacher steps (1 model call each) per student interval.
        trajectories: number of training trajectories.
        batch: trajectories per optimiser round.
        lr: Adam learning rate (paper 5e-3).
        seed: seed of the initial latents (held-out batch: seed + 1).
        holdout: size of the held-out batch for the before/after loss.
    """

    solver: str = "amed"
    afs: bool = True
    feature_mode: str = "bottleneck"
    scale_dir: float = 0.01
    scale_time: float = 0.0
    max_order: int = 3
    prediction: str = "data"
    lower_order_final: bool = True
    teacher_substeps: int = 8
    trajectories: int = 512
    batch: int = 16
    lr: float = 5e-3
    seed: int = 0
    holdout: int = 32

    def check(self) -> None:
        order = min(self.max_order, MAX_ORDERS["dpmpp_2m"]) if self.solver == "dpmpp_2m" else self.max_order
        check_solver_config(self.solver, order, self.prediction)
        if self.feature_mode not in FEATURE_MODES:
            raise ValueError(f"feature_mode must be one of {FEATURE_MODES}, got {self.feature_mode!r}")
        for name in ("teacher_substeps", "trajectories", "batch", "holdout"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @property
    def order(self) -> int:
        return min(self.max_order, MAX_ORDERS["dpmpp_2m"]) if self.solver == "dpmpp_2m" else self.max_order


def student_nfe(n_positive: int, afs: bool, final_denoise: bool) -> int:
    """Model calls of an AMED run over ``n_positive`` positive sigmas."""
    return 2 * (n_positive - 1) - int(afs) + int(final_denoise)


def _ve_call(model: Callable, mt: ModelType, extra_args: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def call(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        view = (-1,) + (1,) * (y.ndim - 1)
        if mt.is_flow:
            sig = s / (1 + s)
            x = y * (1 / (1 + s)).reshape(view).to(y.dtype)
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


def _interval_losses(predictor: AMEDPredictor, settings: TrainSettings, call: Callable, grid_ve: Sequence[float],
                     alphas: Sequence[float], tb: TeacherBatch, source: Any,
                     optimizer: Optional[torch.optim.Optimizer]) -> List[float]:
    """Run the student over one batch; with an optimiser take one step per interval.
    Returns the per-interval losses."""
    core = AMEDCore(settings.solver, grid_ve, call, settings.order, settings.prediction, settings.lower_order_final)
    use_feat = settings.feature_mode == "bottleneck"
    single = settings.solver in SINGLE_STEP
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
            with torch.no_grad():
                if source is not None and use_feat:
                    source.clear()
                den = call(y_in, torch.full((b,), grid_ve[j], dtype=torch.float64, device=y.device))
                feat = source.take() if (source is not None and use_feat) else None
        if feat is not None:
            feat = feature_positions(feat, predictor.feature_size)
        with torch.set_grad_enabled(optimizer is not None):
            r, c, a = predictor(feat, grid_ve[j], grid_ve[j + 1], batch=b)
            dev = y_in.device
            y1, _ = core.step(j, y_in, den, r.to(dev), c.to(dev), a.to(dev))
            diff = (y1 - tb.y[j + 1]) * alphas[j + 1]
            loss = diff.pow(2).flatten(1).sum(1).mean()
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _sanitize_grads(predictor.parameters())
            optimizer.step()
        losses.append(float(loss.detach()))
        y = y1.detach()
        core.hist_d = [h.detach() for h in core.hist_d]
        core.hist_s = [h.detach() for h in core.hist_s]
        if core.prev_m is not None:
            core.prev_m, core.prev_lam = core.prev_m.detach(), core.prev_lam.detach()
    return losses


def distillation_loss(predictor: AMEDPredictor, settings: TrainSettings, call: Callable, grid_ve: Sequence[float],
                      alphas: Sequence[float], tb: TeacherBatch, source: Any = None) -> float:
    """Total distillation loss (sum over intervals) of ``predictor`` on a teacher batch."""
    with torch.no_grad():
        return float(sum(_interval_losses(predictor, settings, call, grid_ve, alphas, tb, source, None)))


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
    progress: Optional[Callable[[int, int, float], None]] = None,
    log: Optional[Callable[[str], None]] = None,
    teacher_cache: Optional[dict] = None,
) -> tuple:
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
        progress: ``progress(done, total, loss)`` after every batch.
        log: a line logger.
        teacher_cache: a dict shared between calls that train several students on the same
            model, grid, prior and seed: teacher batches are computed once.

    Returns ``(predictor, config, history)``: the trained module, its metadata (without
    ``model_family``/``cfg``/``command``, which the caller adds) and the per-batch mean
    interval losses.
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
    predictor = AMEDPredictor(64, settings.scale_dir, settings.scale_time).to(device)
    opt = torch.optim.Adam(predictor.parameters(), lr=settings.lr, betas=(0.9, 0.999), eps=1e-8)
    g_hold = torch.Generator().manual_seed(settings.seed + 1)
    g = torch.Generator().manual_seed(settings.seed)

    def make_teacher(n: int, gen: torch.Generator, tag: Any) -> TeacherBatch:
        x0 = prior(n, gen).to(device, dtype)
        check_latent(x0)
        key = (tuple(grid_ve), settings.seed, settings.teacher_substeps, source is not None, n, tag)
        if teacher_cache is not None and key in teacher_cache:
            return teacher_cache[key]
        tb = teacher_batch(call, grid_ve, x0 * (1.0 / alphas[0]), settings.teacher_substeps, source)
        if teacher_cache is not None:
            teacher_cache[key] = tb
        return tb

    ctx = source if source is not None else contextlib.nullcontext()
    history: List[float] = []
    t0 = time.time()
    with ctx:
        hold = make_teacher(settings.holdout, g_hold, "holdout")
        if hold.feat and hold.feat[-1] is not None:
            size = hold.feat[-1].shape[-1] * hold.feat[-1].shape[-2]
            size = 64 if size >= 64 else size  # larger maps are pooled to 8 x 8
            if size != predictor.feature_size:
                predictor = AMEDPredictor(size, settings.scale_dir, settings.scale_time).to(device)
                opt = torch.optim.Adam(predictor.parameters(), lr=settings.lr, betas=(0.9, 0.999), eps=1e-8)
        loss0 = distillation_loss(predictor, settings, call, grid_ve, alphas, hold, source)
        if log:
            log(f"held-out loss before training (r = 1/2, the base method): {loss0:.5g}")
        n_batches = max(1, math.ceil(settings.trajectories / settings.batch))
        for bi in range(n_batches):
            tb = make_teacher(settings.batch, g, bi)
            losses = _interval_losses(predictor, settings, call, grid_ve, alphas, tb, source, opt)
            history.append(sum(losses))
            if progress:
                progress(bi + 1, n_batches, history[-1])
        loss1 = distillation_loss(predictor, settings, call, grid_ve, alphas, hold, source)
    seconds = time.time() - t0
    if log:
        log(f"held-out loss after training: {loss1:.5g} ({seconds:.1f} s)")
    predictor.eval().requires_grad_(False)
    config: Dict[str, Any] = dict(
        solver=settings.solver, afs=settings.afs, feature_mode=settings.feature_mode,
        feature_size=predictor.feature_size, scale_dir=settings.scale_dir, scale_time=settings.scale_time,
        max_order=settings.order, prediction=settings.prediction, lower_order_final=settings.lower_order_final,
        sigmas=positive, model_type=mt.kind, sigma_min=positive[-1], sigma_max=positive[0],
        teacher=f"AB3 in sigma, {settings.teacher_substeps} steps per interval (uniform in lambda)",
        trajectories=n_batches * settings.batch, batch=settings.batch, lr=settings.lr, seed=settings.seed,
        loss_before=loss0, loss_after=loss1, train_seconds=round(seconds, 1),
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    predictor.config = dict(config)
    return predictor, config, history


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
