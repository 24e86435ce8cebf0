"""AMED-Solver and AMED-Plugin (Zhou et al., "Fast ODE-based Sampling for Diffusion Models in
Around 5 Steps", CVPR 2024, arXiv 2312.00094; the math is restated in docs/amed.md).

Both take two model calls per interval [sigma_i, sigma_{i+1}] of the (trained) grid. In
VE-equivalent variables (y = x / alpha, s = sigma / alpha, lambda = -log s; the k-diffusion
x and sigma for SD-type models), with d = (y - D) / s = dy/ds the probability-flow ODE:

1. d_i from D(x_i, sigma_i); at the first step with ``afs`` the analytical first step
   (paper Sec. 3.4) d_0 = y_0 / sqrt(1 + s_0^2) instead (no model call).
2. A predictor (:class:`~.amed_predictor.AMEDPredictor`) maps the bottleneck feature of
   that call (zero with AFS or for time-only predictors) and (s_i, s_{i+1}) to r, a
   direction scale c and a time scale a.
3. s_m = s_{i+1}^r s_i^(1-r) (paper Eq. 9: linear in lambda), per sample.
4. y_m = y_i + (s_m - s_i) d_i; D_m = D(y_m, a s_m); d_m = (y_m - D_m) / s_m.
5. The update:
   * ``amed`` (AMED-Solver, paper Eq. 10-11, the approximate mean direction):
     y_{i+1} = y_i + c (s_{i+1} - s_i) d_m;
   * ``euler`` (AMED-Plugin, paper Sec. 3.5): y_{i+1} = y_m + c (s_{i+1} - s_m) d_m;
   * ``dpm_2``: y_{i+1} = y_i + c (s_{i+1} - s_i) [d_m / (2r) + (1 - 1/(2r)) d_i]
     (DPM-Solver-2 with its intermediate point at fraction r of the lambda step);
   * ``ipndm``: the grid becomes s_0, s_m0, s_1, s_m1, ...; both sub-steps are iPNDM
     (fixed Adams-Bashforth weights) over one history of d values; c scales the second;
   * ``deis``: the same with rhoAB-DEIS weights (Adams-Bashforth in s for the actual,
     per-sample, nodes; exact 4-point Gauss-Legendre integrals of the Lagrange basis);
   * ``dpmpp_2m``: DPM-Solver++(2M) (``prediction="data"``; or DPM-Solver-2M on eps,
     ``"noise"``, the paper's latent-model setting) over the interleaved grid, or the
     third-order multistep update with ``max_order=3``; c scales the model-output terms of
     the second sub-step. No dynamic thresholding (it is for
     pixel models in [-1, 1] and wrong for latents).

With r = 1/2, c = a = 1, ``amed`` and ``dpm_2`` are DPM-Solver-2 (k-diffusion's
``sample_dpm_2``), ``euler`` is Euler on the interleaved grid, and so on: an AMED-Plugin
without a predictor is its base solver on the grid refined at the lambda midpoints.

The last interval to sigma = 0 is not an AMED interval (s_m = 0^r ... degenerates): the AMED
steps run over the positive sigmas, then the final step either returns D(x, sigma_min)
(1 model call, the pack's default) or, with ``stop_at_sigma_min``, the state at sigma_min
(the paper's protocol). Model calls: 2 per AMED interval, minus 1 with AFS, plus 1 for the
final denoise.

Flow models (x = (1 - sigma) x0 + sigma eps) go through the model-type adapter: the
steps above act on (y, s) = (x / (1 - sigma), sigma / (1 - sigma)), the model is called at
x = y / (1 + s), sigma = s / (1 + s). The predictor embeds s.

Pure PyTorch; imports no host. The bottleneck feature comes from a feature source (see
:mod:`.amed_capture`, attached automatically for U-Nets with a ``middle_block``). The
intervals run through :mod:`.run`'s step loop.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from .amed_capture import capture_for
from .amed_core import AMED_SOLVERS, MAX_ORDERS, PLUGIN_BASES, PREDICTIONS, AMEDCore, batch_view, check_solver_config, \
    feature_positions
from .amed_predictor import AMEDPredictor
from .params import STOP_AT_SIGMA_MIN
from .registry import Param, SamplerSpec, checked, register
from .run import History, Method, SamplerRun, Solver, Variable

__all__ = ["sample_amed", "sample_amed_plugin", "check_grid", "DEFAULT_ORDERS"]


class _FixedR:
    """Stand-in predictor without training: r fixed, c = a = 1 (the base solver's method)."""

    def __init__(self, r: float):
        if not 0.0 < r < 1.0:
            raise ValueError(f"r must be in (0, 1), got {r!r}")
        self.r = float(r)
        self.config: Mapping[str, Any] = {}

    def __call__(self, feature, s0, s1, batch):
        r = torch.full((batch,), self.r)
        one = torch.ones(batch)
        return r, one, one


def _predictor_config(predictor: Any) -> Mapping[str, Any]:
    return getattr(predictor, "config", None) or {}


def _resolve(name: str, given: Any, cfg: Mapping[str, Any], default: Any) -> Any:
    """A solver setting: the predictor's (an explicit different value is an error), else the
    given value, else the default."""
    if name in cfg:
        if given is not None and given != cfg[name]:
            raise ValueError(f"the AMED predictor was trained with {name}={cfg[name]!r}, but {name}={given!r} "
                             f"was requested; retrain or leave {name} unset")
        return cfg[name]
    return default if given is None else given


def check_grid(predictor_cfg: Mapping[str, Any], grid: Sequence[float], kind: str) -> None:
    """Raise ``ValueError`` naming the mismatch between a predictor's training grid / model
    family and this run (paper Sec. 3.3: predictors are tied to their time schedule)."""
    trained = predictor_cfg.get("sigmas")
    if trained is None:
        return
    if predictor_cfg.get("model_type") not in (None, kind):
        raise ValueError(f"AMED predictor model family mismatch: trained on a {predictor_cfg['model_type']!r} "
                         f"model, this model is {kind!r}")
    if len(trained) != len(grid):
        raise ValueError(
            f"AMED predictor grid mismatch: trained on {len(trained)} positive sigmas "
            f"({len(trained) - 1} AMED steps, schedule {predictor_cfg.get('schedule', '?')}), this run has {len(grid)}; "
            f"use the same steps and schedule or retrain")
    for j, (a, b) in enumerate(zip(trained, grid)):
        if abs(a - b) > 1e-4 * max(abs(a), abs(b)) + 1e-7:
            raise ValueError(
                f"AMED predictor grid mismatch at sigma[{j}]: trained {a:.6g}, this run {b:.6g} "
                f"(schedule {predictor_cfg.get('schedule', '?')}, sigma range "
                f"{predictor_cfg.get('sigma_min', '?')}..{predictor_cfg.get('sigma_max', '?')}); "
                f"use the trained schedule or retrain")


def _model_call(run: SamplerRun) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """D at VE-equivalent (y, s [B]): the model sees x = alpha y at sigma(s)."""
    mt = run.mt
    n = run.x.ndim

    def call(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if mt.is_flow:
            sig = s / (1 + s)
            x = y * batch_view(1 / (1 + s), n).to(y.dtype)
        else:
            sig, x = s, y
        out = run.model(x, sig.to(run.sigma_dtype), **run.extra_args)
        return out if out.dtype == run.dtype else out.to(run.dtype)

    return call


class _Intervals(Solver):
    """The AMED intervals as the loop's steps. The state is the VE-equivalent y = x / alpha
    (:class:`AMEDCore`'s variable); an interval's model call comes with the bottleneck
    feature the predictor reads; with AFS the first interval has no call. The step to
    sigma = 0, if any, is the loop's final denoise."""

    def __init__(self, run: SamplerRun, core: AMEDCore, predictor: Any, afs: bool, source: Any):
        super().__init__(run)
        self.core, self.pred, self.afs, self.source = core, predictor, afs, source
        self.feature: Optional[torch.Tensor] = None

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 / self.run.alpha[0])

    def x_at(self, i: int, y: torch.Tensor) -> torch.Tensor:
        return y * self.run.alpha[i]

    def evaluate(self, i: int, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        run, grid = self.run, self.core.ve
        self.feature = None
        if i >= len(grid) - 1:  # the final denoise
            return run.denoise(x, run.sigma_dev[i])
        if i == 0 and self.afs:  # no call: the data estimate the analytical direction implies
            return y - self.core.afs_direction(y, grid[0]) * grid[0]
        if self.source is None:
            return run.denoise(x, run.sigma_dev[i])
        self.source.clear()
        den = run.denoise(x, run.sigma_dev[i])
        self.feature = self.source.take()
        return den

    def step(self, i: int, y: torch.Tensor, denoised: torch.Tensor, history: History) -> torch.Tensor:
        grid, dev = self.core.ve, self.run.device
        feat = None if self.feature is None else feature_positions(self.feature, self.pred.feature_size)
        r, c, a = self.pred(feat, grid[i], grid[i + 1], batch=y.shape[0])
        y, _ = self.core.step(i, y, None if (i == 0 and self.afs) else denoised, r.to(dev), c.to(dev), a.to(dev))
        return y


_AFS = Param("afs", True, "Analytical first step: the first direction is x / sqrt(1 + sigma^2) instead of a model "
                          "call (saves one call; a predictor fixes it).")
_R = Param("r", 0.5, "Without a predictor: the fixed intermediate time as a fraction of the log-sigma step "
                     "(0.5 = the base solver's midpoint method).", 0.01, 0.99, 0.01)
_SOLVER_PARAMS = (_AFS, _R, STOP_AT_SIGMA_MIN)
_PLUGIN_PARAMS = (
    Param("base", "ipndm", "Base solver: dpm_2 (DPM-Solver-2), euler, ipndm, dpmpp_2m (DPM-Solver++(2M)), "
                           "deis (rhoAB-DEIS). A predictor fixes it.", choices=PLUGIN_BASES),
    _AFS,
    Param("max_order", 3, "ipndm / deis: history length 1-4; dpmpp_2m: order 1-3 (capped at 3; unset: 2, "
                          "DPM-Solver++(2M)).", 1, 4, 1),
    Param("prediction", "data", "dpmpp_2m: data (DPM-Solver++) or noise (DPM-Solver, the paper's latent "
                                "setting).", choices=PREDICTIONS),
    Param("lower_order_final", True, "dpmpp_2m: first-order last sub-step (official default)."),
    _R, STOP_AT_SIGMA_MIN,
)
_DEFAULTS = {p.name: p.default for p in _PLUGIN_PARAMS}
# history length of the multistep bases by default: the parameter's, capped by the base;
# dpmpp_2m stays DPM-Solver++(2M) unless order 3 is asked for (the official LSUN setting)
DEFAULT_ORDERS = dict({b: min(_DEFAULTS["max_order"], top) for b, top in MAX_ORDERS.items()}, dpmpp_2m=2)


def _run_amed(model: Callable, x: torch.Tensor, sigmas: Any, extra_args: Optional[dict], callback, disable,
              settings: Mapping[str, Any], default_solver: str, predictor: Any, feature_source: Any,
              model_type: Any, stop_at_sigma_min: bool) -> torch.Tensor:
    """``settings``: solver, afs, max_order, prediction, lower_order_final, r as given (None =
    unset: the predictor's, else the parameter's default; ``default_solver`` for solver)."""
    run = SamplerRun(model, x, sigmas, extra_args, callback, disable, method=Method(variable=Variable.OWN),
                     model_type=model_type, stop_at_sigma_min=stop_at_sigma_min, sigma_steps=False)
    cfg = _predictor_config(predictor)
    defaults = dict(_DEFAULTS, solver=default_solver)
    solver = _resolve("solver", settings["solver"], cfg, defaults["solver"])
    defaults["max_order"] = DEFAULT_ORDERS.get(solver, defaults["max_order"])
    got = {k: _resolve(k, v, cfg, defaults[k]) for k, v in settings.items() if k != "r"}
    max_order = min(int(got["max_order"]), MAX_ORDERS["dpmpp_2m"]) if solver == "dpmpp_2m" else int(got["max_order"])
    check_solver_config(solver, max_order, got["prediction"])
    positive = [s for s in run.sigma if s > 0]
    grid_ve = [run.mt.ve_sigma(s) for s in positive]
    if predictor is None:
        pred: Any = _FixedR(_R.default if settings["r"] is None else float(settings["r"]))
        feature_mode = "time"
    else:
        check_grid(cfg, positive, run.mt.kind)
        pred = predictor.to(run.device) if isinstance(predictor, torch.nn.Module) else predictor
        feature_mode = cfg.get("feature_mode", "bottleneck")
    afs = bool(got["afs"])
    core = AMEDCore(solver, grid_ve, _model_call(run), max_order, got["prediction"], bool(got["lower_order_final"]))
    source = None
    if feature_mode == "bottleneck" and len(positive) - 1 > (1 if afs else 0):
        source = capture_for(model) if feature_source is None else feature_source
    with (source if source is not None else contextlib.nullcontext()):
        return run.run(_Intervals(run, core, pred, afs, source))


@checked(_SOLVER_PARAMS)
@torch.no_grad()
def sample_amed(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    predictor: Optional[AMEDPredictor] = None, afs: Optional[bool] = None, r: Optional[float] = None,
    feature_source: Any = None, model_type: Any = None, stop_at_sigma_min: bool = False,
) -> torch.Tensor:
    """AMED-Solver (2 model calls per interval; 1 fewer with AFS; +1 for a final denoise).

    Args:
        model: denoiser ``model(x, sigma, **extra_args) -> x0``; sigma may be per sample.
        x: initial latent at ``sigmas[0]``.
        sigmas: decreasing noise levels; with a predictor its positive part must be the grid
            the predictor was trained on. A final 0 returns D(x, sigma_min).
        extra_args: passed to the model.
        callback: called once per interval with ``{x, i, sigma, sigma_hat, denoised}``.
        disable: disables the tqdm progress bar.
        predictor: a trained :class:`AMEDPredictor` (its ``config`` fixes the solver, AFS and
            grid); None runs the method with a fixed ``r`` (DPM-Solver-2 at r = 1/2).
        afs: analytical first step (saves one model call); None = the predictor's, else True.
        r: without a predictor, the fixed intermediate fraction in (0, 1) (None = 1/2).
        feature_source: where the bottleneck feature comes from (default: a forward hook on
            the model's U-Net ``middle_block``; see :mod:`.amed_capture`).
        model_type: override model-type detection (``"ve"`` or ``"flow"``).
        stop_at_sigma_min: with sigmas ending in 0, return the state at sigma_min without
            the final denoise (the paper's protocol).

    Every parameter's default, range and choices: its ``Param`` (checked at entry).
    """
    if _predictor_config(predictor).get("solver", "amed") != "amed":
        raise ValueError(f"this predictor was trained for AMED-Plugin on {_predictor_config(predictor)['solver']}; "
                         "use the AMED-Plugin sampler")
    settings = dict(solver="amed" if predictor is None else None, afs=afs, max_order=None, prediction=None,
                    lower_order_final=None, r=r)
    return _run_amed(model, x, sigmas, extra_args, callback, disable, settings, "amed", predictor, feature_source,
                     model_type, stop_at_sigma_min)


@checked(_PLUGIN_PARAMS)
@torch.no_grad()
def sample_amed_plugin(
    model: Callable, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Optional[dict] = None,
    callback: Optional[Callable] = None, disable: Optional[bool] = None,
    predictor: Optional[AMEDPredictor] = None, base: Optional[str] = None, afs: Optional[bool] = None,
    max_order: Optional[int] = None, prediction: Optional[str] = None, lower_order_final: Optional[bool] = None,
    r: Optional[float] = None, feature_source: Any = None, model_type: Any = None, stop_at_sigma_min: bool = False,
) -> torch.Tensor:
    """AMED-Plugin on a base solver (2 model calls per interval; 1 fewer with AFS; +1 for a
    final denoise). Settings left at None take the predictor's value, else their parameter's
    default (base ``ipndm``, AFS on, ``max_order`` 3 (dpmpp_2m: 2), data prediction, lower-order final).

    Args:
        model, x, sigmas, extra_args, callback, disable: as :func:`sample_amed`.
        predictor: a trained :class:`AMEDPredictor` (its ``config`` fixes base, AFS, orders
            and grid); None runs the base solver on the lambda-midpoint-refined grid
            (fixed ``r``).
        base: ``"dpm_2"`` (DPM-Solver-2), ``"euler"``, ``"ipndm"``, ``"dpmpp_2m"``
            (DPM-Solver++(2M)) or ``"deis"`` (rhoAB-DEIS).
        afs: analytical first step (saves one model call).
        max_order: ipndm / deis: 1-4 history values; dpmpp_2m: order 1-3 (capped at 3;
            None = 2, DPM-Solver++(2M)).
        prediction: dpmpp_2m: ``"data"`` (DPM-Solver++) or ``"noise"`` (DPM-Solver, the
            paper's latent setting).
        lower_order_final: dpmpp_2m: last sub-step first order (the official default).
        r: without a predictor, the fixed intermediate fraction in (0, 1) (None = 1/2).
        feature_source, model_type, stop_at_sigma_min: as :func:`sample_amed`.

    Every parameter's default, range and choices: its ``Param`` (checked at entry).
    """
    if _predictor_config(predictor).get("solver") == "amed":
        raise ValueError("this predictor was trained for the AMED-Solver; use the AMED-Solver sampler")
    settings = dict(solver=base, afs=afs, max_order=max_order, prediction=prediction,
                    lower_order_final=lower_order_final, r=r)
    return _run_amed(model, x, sigmas, extra_args, callback, disable, settings, _DEFAULTS["base"], predictor,
                     feature_source, model_type, stop_at_sigma_min)


register(SamplerSpec(
    id="amed_solver", function=sample_amed, family="amed", title="AMED-Solver",
    summary="Learned mean-direction solver (2 calls per step, AFS saves one); needs a predictor trained on "
            "your model and schedule, else r = 1/2 (DPM-Solver-2).",
    params=_SOLVER_PARAMS,
    calls_per_step=2, stochastic=False,
    # AFS assumes zero-mean data: on the digits flow model its first step misses the data mean
    # (ODE error 2.1 vs 0.07 without, 5 steps, `simple`); the menu entry runs without it.
    menu={"afs": False},
))

register(SamplerSpec(
    id="amed_plugin", function=sample_amed_plugin, family="amed", title="AMED-Plugin",
    summary="Learned intermediate time for a base solver (2 calls per step, AFS saves one); needs a "
            "predictor, else the base solver on the midpoint-refined grid.",
    params=_PLUGIN_PARAMS,
    calls_per_step=2, stochastic=False,
    menu={"afs": False},  # as amed_solver: AFS misses the data mean on flow models
))
