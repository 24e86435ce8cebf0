"""The one step loop every solver runs through, and what it does around the update formula.

:class:`SamplerRun` validates the inputs before any model call, resolves the model type,
computes the schedule in float64 on the host once (sigma, half-log-SNR lambda, alpha,
VE-equivalent sigma), moves sigmas to ``x.device``, and provides the model call, the
progress bar, the per-step callback and the noise sampler. :meth:`SamplerRun.run` is the
step loop: model call, callback, history, the step itself, and forgetting the history after
an injection of noise. A solver (:class:`Solver`) supplies only its per-step coefficients
and the formula of its own steps; the loop does no host-device synchronisation.

How each step is taken is decided once per call from the solver's :class:`Method`
(:attr:`SamplerRun.mode`, a :class:`StepMode`):

* ``SOLVER``: the solver's own update (in half-log-SNR lambda for SEEDS / ER-SDE);
* ``SIGMA``: a deterministic step deep in the tail (lambda > ``TAIL_LAMBDA``), or in the
  tail (lambda > 0) with a lambda-width above ``TAIL_H``, or (order-3 lambda-solvers on
  flow models) in the head below lambda = -``HEAD_LAMBDA``, taken on
  dx/dsigma = (x - D) / sigma in the model's own sigma (Runge-Kutta with the solver's
  number of stages for single-step solvers, variable-step Adams-Bashforth from the stored
  eps history for multistep ones). Near sigma = 0, D is smooth in sigma but not in
  lambda = -log sigma, so lambda-steps there lose the solver's order (docs/sigma_steps.md).
  Solvers whose own steps are already in sigma (rhoAB, rhoRK, iPNDM) never need them;
* ``FINAL_AB``: on flow models (velocity finite at sigma = 0), the step from the last
  positive sigma to 0 as an Adams-Bashforth step in sigma over the stored eps history at
  no extra model call, instead of the first-order x = D(x, sigma_last): with the solver's
  order when sigma_last is small (lambda above ``FINAL_AB_LAMBDA``), linear (2 values)
  from a longer last step, and x = D from sigma_last >= 0.5. When that step is
  short beside the previous one (a schedule that ends at the model's sigma_min, such as
  *normal*), its length does not shrink with the step count, so it uses one stored value
  more than the solver's order (:meth:`SamplerRun.final_nodes`): an extrapolation over a
  fixed interval from k nodes spaced h apart errs by O(h^(k-1));
* ``DENOISE``: the step to sigma = 0 returns D (VE models: no model below sigma_min).

``sigma_steps=False`` (one flag) takes every step with the solver's own formula and the
step to 0 as x = D, as in the papers.

Which steps inject noise (:meth:`SamplerRun.noise_on`): the noise window
``[noise_start, noise_end)`` as fractions of the steps; outside it a stochastic solver
runs its deterministic (eta = 0) update.

Corrected start (multistep solvers of order >= 3, ``corrected_start``): the first step
has only one stored value, so it is a first-order step (local error O(h^2), which would cap
the global order at 2). Once the second model output is known, the loop redoes it with
two values at no extra call (:meth:`SamplerRun.start_fix`; docs/orders.md).

Corrector (a solver's :meth:`Solver.corrects` / :meth:`Solver.correct`; ER-SDE's
``corrector``): once D(x_{i+1}, sigma_{i+1}) is known, step i is redone with it, the
polynomial now interpolating the D history instead of extrapolating it, at no extra model
call; D_{i+1} keeps the value taken at the uncorrected x_{i+1} (the predictor-corrector
form of UniPC, Zhao et al. 2023, and SA-Solver, Xue et al. 2023), and the stored eps of that
call is re-read at the corrected x, eps = (x - D) / sigma: a step in sigma or a flow model's
final extrapolation that starts from the corrected x with the eps of the uncorrected one
would add the whole correction to its result (x - sigma eps = D + correction). A stochastic
step keeps its noise: the correction changes only the weights of the D values.

CFG++ (``cfg_pp``, :mod:`.cfg_pp`; docs/algorithms.md, CFG++): after the model call at the
start of step i the state x is replaced by x~ = x + alpha_i (D_g - D_u), so that the eps the
loop stores, (x~ - D_g) / sigma_i, and everything that reads the state or the histories
(the solver's own step, SIGMA steps, FINAL_AB, the corrected start) see the pair
(D_g, eps_u); Runge-Kutta stages read their eps at their own shifted points
(:meth:`SamplerRun.rk_step`). Without an unconditional prediction x~ = x.
"""

from __future__ import annotations

import math
import enum
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import torch
from tqdm.auto import trange

from .cfg_pp import CFGPlusPlus, UncondSource, cfg_pp_source
from .lagrange import rhoab_coefficients
from .model_types import ModelType, resolve_model_type
from .noise import NOISE_TYPES, NoiseSampler, make_noise_sampler
from .runge_kutta import SIGMA_STEP_TABLEAUS, RKPlan, rk_plan, rk_step

__all__ = ["SamplerRun", "Solver", "Method", "StepMode", "Variable", "History", "StartFix", "redo_first_step",
           "check_sigmas", "check_latent",
           "check_window", "TAIL_H", "TAIL_LAMBDA", "FINAL_AB_LAMBDA", "FINAL_LINEAR_LAMBDA", "HEAD_LAMBDA"]

# Which deterministic steps are taken in sigma (measured: docs/sigma_steps.md): every step
# below sigma_ve = e^-TAIL_LAMBDA, and between lambda = 0 and TAIL_LAMBDA those whose
# lambda-width exceeds DEFAULT_TAIL_H. Module attributes, read at each call.
TAIL_H = 1.0
TAIL_LAMBDA = 2.0
# A flow model's final step to 0 extrapolates the velocity from the stored values over
# [0, sigma_last] (measured: docs/algorithms.md, "Steps in sigma"). With the solver's
# order when lambda at sigma_last is above FINAL_AB_LAMBDA (flow sigma_last below
# 1 / (1 + e) ~ 0.27); from a longer last step (5-8 calls on *simple*) a quadratic
# extrapolation overshoots on sharp data, so it is linear (2 values) down to lambda =
# FINAL_LINEAR_LAMBDA (sigma_last = 0.5), and x = D above that.
FINAL_AB_LAMBDA = 1.0
FINAL_LINEAR_LAMBDA = 0.0
# The head of a flow schedule (sigma -> 1, alpha -> 0): step i has a lambda-width of about
# log((i + 1) / i) whatever the step count, and D moves there like alpha^2 ~ (i / n)^2, so
# lambda-steps err by O(n^-2) in total, whatever their order. Lambda-solvers of order 3
# take the steps that end below lambda = -HEAD_LAMBDA in sigma.
HEAD_LAMBDA = 2.0

def check_sigmas(sigmas: Any) -> List[float]:
    """Validate a schedule and return it as a float64 list (raises ``ValueError``)."""
    if not isinstance(sigmas, torch.Tensor):
        try:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        except Exception as e:  # noqa: BLE001 - reported as a ValueError with the cause
            raise ValueError(f"sigmas must be a 1-D tensor of noise levels ({e})") from None
    if sigmas.ndim != 1:
        raise ValueError(f"sigmas must be 1-D, got shape {tuple(sigmas.shape)}")
    if sigmas.numel() < 2:
        raise ValueError(f"sigmas must have at least 2 values, got {sigmas.numel()}")
    if not sigmas.is_floating_point():
        raise ValueError(f"sigmas must be floating point, got {sigmas.dtype}")
    values = sigmas.detach().to("cpu", torch.float64).tolist()
    for i, s in enumerate(values):
        if not math.isfinite(s):
            raise ValueError(f"sigmas contain NaN or inf (sigmas[{i}] = {s})")
        if s < 0:
            raise ValueError(f"sigmas must be non-negative (sigmas[{i}] = {s})")
    for i in range(len(values) - 1):
        if not values[i + 1] < values[i]:
            raise ValueError(
                f"sigmas must be strictly decreasing (sigmas[{i}] = {values[i]}, "
                f"sigmas[{i + 1}] = {values[i + 1]})"
            )
    return values


def check_window(noise_start: float, noise_end: float) -> None:
    """The noise window [noise_start, noise_end): both in [0, 1]; an inverted one would
    silently run without noise, so it is refused (an empty one, start = end, is allowed)."""
    if not (0.0 <= noise_start <= 1.0 and 0.0 <= noise_end <= 1.0):
        raise ValueError(f"noise_start and noise_end must lie in [0, 1], got {noise_start}, {noise_end}")
    if noise_start > noise_end:
        raise ValueError(f"noise_start ({noise_start}) must not exceed noise_end ({noise_end}): the noise window "
                         f"is the steps from noise_start to noise_end; equal values run without noise")


def check_latent(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have a batch dimension, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf")


class StepMode(str, enum.Enum):
    """How one step is taken (see the module doc)."""

    SOLVER = "solver"
    SIGMA = "sigma"
    FINAL_AB = "final_ab"
    DENOISE = "denoise"


class Variable(str, enum.Enum):
    """The variable a solver's own steps are taken in."""

    LAMBDA = "lambda"  # half-log-SNR (SEEDS, ER-SDE): steps in sigma near sigma = 0, head steps
    OWN = "own"        # the model's time or log sigma (tAB-, log-rho-DEIS): steps in sigma near 0
    SIGMA = "sigma"    # sigma itself (rhoAB, rhoRK, iPNDM): never a SIGMA step


@dataclass(frozen=True)
class Method:
    """What :class:`SamplerRun` needs to know of a solver to plan its steps.

    Attributes:
        order: convergence order: the stages of a SIGMA step of a single-step solver, the
            stored values of a multistep solver's SIGMA step and of the final extrapolation.
        multistep: SIGMA steps as Adams-Bashforth over the eps history (else Runge-Kutta),
            and a corrected start applies.
        variable: what the solver's own steps are taken in (:class:`Variable`).
        stochastic: the solver injects noise (inside the noise window).
        eps_depth: eps values the solver's own update reads (DEIS, iPNDM), else 0.
        denoised_depth: denoised values the solver's own update reads (ER-SDE), else 0.
    """

    order: int = 1
    multistep: bool = False
    variable: Variable = Variable.LAMBDA
    stochastic: bool = False
    eps_depth: int = 0
    denoised_depth: int = 0


class History:
    """Model outputs of the current trajectory, newest first: eps = (x - D) / sigma (for
    Adams-Bashforth steps in sigma) and, where a solver asks for them, the D values.

    :meth:`clear_eps` after an injection of noise: eps values from before it belong to
    another trajectory. (A solver's own D history, ER-SDE's, is part of its SDE scheme and
    is kept.)"""

    def __init__(self, eps_depth: int, denoised_depth: int = 0, final_nodes: Optional[int] = None):
        self.eps_depth = max(0, int(eps_depth))
        self.denoised_depth = max(0, int(denoised_depth))
        self.final_nodes = final_nodes  # values the final step to 0 uses (SamplerRun.final_nodes)
        self.sigmas: List[float] = []
        self.eps: List[torch.Tensor] = []
        self.denoised: List[torch.Tensor] = []

    def push(self, sigma: float, eps: Optional[torch.Tensor], denoised: torch.Tensor) -> None:
        if self.eps_depth and eps is not None:
            self.sigmas.insert(0, sigma)
            self.eps.insert(0, eps)
            del self.sigmas[self.eps_depth:], self.eps[self.eps_depth:]
        if self.denoised_depth:
            self.denoised.insert(0, denoised)
            del self.denoised[self.denoised_depth:]

    def replace_newest_eps(self, eps: torch.Tensor) -> torch.Tensor:
        """The newest eps, re-read at a corrected state (the corrector: D is what the model
        returned, eps = (x - D) / sigma follows x; steps in sigma and a flow model's final
        extrapolation start from the corrected x)."""
        if self.eps:
            self.eps[0] = eps
        return eps

    def clear_eps(self) -> None:
        self.sigmas.clear()
        self.eps.clear()

    def ab_step(self, x: torch.Tensor, s0: float, s1: float, nodes: Optional[int] = None) -> torch.Tensor:
        """x + int_{s0}^{s1} P(sigma) dsigma, P through the newest ``nodes`` stored eps
        (all by default; s0 = newest node)."""
        k = len(self.sigmas) if nodes is None else min(nodes, len(self.sigmas))
        for c, e in zip(rhoab_coefficients(self.sigmas[:k], s0, s1), self.eps):
            x = x + e * c
        return x

    def final_step(self, x: torch.Tensor, sigma_last: float) -> torch.Tensor:
        """A flow model's step from ``sigma_last`` to 0 (``StepMode.FINAL_AB``)."""
        return self.ab_step(x, sigma_last, 0.0, self.final_nodes)


StartFix = Callable[[torch.Tensor, History], torch.Tensor]


def redo_first_step(two_node: Sequence[float], one_node: float) -> StartFix:
    """The corrected start of a first step x_1 = x_0 + C_00 eps_0: once eps_1 is known,
    x_1 += W_1 eps_1 + (W_0 - C_00) eps_0, with (W_1, W_0) = ``two_node`` the rule's
    weights through sigma_1 and sigma_0 and C_00 = ``one_node``. The corrected x_1 errs by
    O(h^3); eps_1, taken at the uncorrected x_1, differs by O(h^2) and enters later steps
    with weights O(h), so solvers of order 3 keep order 3 (docs/orders.md)."""
    fix = [float(two_node[0]), float(two_node[1] - one_node)]
    return lambda x, history: x + history.eps[0] * fix[0] + history.eps[1] * fix[1]


class Solver:
    """A solver's part of one sampling call. Subclasses compute their float64 per-step
    coefficients in ``__init__`` (from ``run``'s schedule and :attr:`SamplerRun.mode`) and
    implement :meth:`step`; the hooks below have the defaults most solvers need."""

    def __init__(self, run: "SamplerRun"):
        self.run = run

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor, history: History) -> torch.Tensor:
        """The solver's own update of step i (``StepMode.SOLVER``), from x at sigma_i with
        D(x, sigma_i) = ``denoised``."""
        raise NotImplementedError

    def injects(self, i: int) -> bool:
        """Whether step i injects noise (the eps history is forgotten after it)."""
        return i in self.run.solver_steps and self.run.noise_on(i)

    def sigma_nodes(self, i: int) -> int:
        """Stored eps values a multistep solver's SIGMA step i uses."""
        return self.run.method.order

    def final_order(self) -> int:
        """The order the final extrapolation to 0 is built for (:meth:`SamplerRun.final_nodes`)."""
        return self.run.method.order

    def start_fix(self) -> Optional[StartFix]:
        """A multistep solver's correction of its own first step (see the module doc)."""
        return None

    def corrects(self, i: int) -> bool:
        """Whether the result of step i is corrected once D at its end is known (see
        :meth:`correct`); decided once per call."""
        return False

    def correct(self, i: int, x: torch.Tensor, history: History) -> torch.Tensor:
        """The corrector of step i (module doc): x = x_{i+1} from the solver's step i, with
        D(x, sigma_{i+1}) already the newest value of ``history``; returns the corrected
        x_{i+1}, from which step i + 1 goes on."""
        raise NotImplementedError

    # The state the loop carries is x unless a solver works in other variables (AMED: x / alpha).
    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def x_at(self, i: int, state: torch.Tensor) -> torch.Tensor:
        return state

    def evaluate(self, i: int, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The model output at the start of step i, x = :meth:`x_at` (i, state) (AMED:
        feature capture, AFS)."""
        return self.run.denoise(x, self.run.sigma_dev[i])


class SamplerRun:
    """Shared set-up, bookkeeping and step loop of one sampling call.

    Attributes (all float64 Python lists indexed like ``sigmas``):
        sigma: the schedule (a flow model's first sigma of 1 offset as ComfyUI does).
        lam: half-log-SNR lambda = log(alpha / sigma) (+inf at sigma = 0).
        alpha: signal scale (1 for VE, 1 - sigma for flow).
        ve: VE-equivalent sigma / alpha.
        mode: the :class:`StepMode` of each step.
        solver_steps: the indices of the ``StepMode.SOLVER`` steps.
        correctable_steps: the solver steps a corrector can redo (:meth:`Solver.correct`).
    """

    def __init__(
        self,
        model: Callable,
        x: torch.Tensor,
        sigmas: Any,
        extra_args: Optional[dict] = None,
        callback: Optional[Callable] = None,
        disable: Optional[bool] = None,
        *,
        method: Method = Method(),
        model_type: Any = None,
        stop_at_sigma_min: bool = False,
        noise_window: Tuple[float, float] = (0.0, 1.0),
        sigma_steps: bool = True,
        corrected_start: bool = True,
        cfg_pp: bool = False,
        uncond: Optional[UncondSource] = None,
    ):
        values = check_sigmas(sigmas)
        check_window(*noise_window)
        check_latent(x)
        self.model = model
        self.extra_args = {} if extra_args is None else extra_args
        self.callback = callback
        self.disable = disable
        self.mt: ModelType = resolve_model_type(model, model_type)
        if self.mt.is_flow and values[0] > 1.0:
            raise ValueError(f"flow-model sigmas must lie in [0, 1] (sigmas[0] = {values[0]})")
        self.sigma = self.mt.prepare_sigmas(values)
        self.lam = [self.mt.half_log_snr(s) for s in self.sigma]
        self.alpha = [self.mt.alpha(s) for s in self.sigma]
        self.ve = [self.mt.ve_sigma(s) for s in self.sigma]
        self.inv_sigma = [1.0 / s if s > 0 else 0.0 for s in self.sigma]

        self.out_dtype = x.dtype
        # Half-precision latents are stepped in float32; float32/64 keep their dtype.
        self.dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        self.device = x.device
        self.sigma_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
        self.s_in = x.new_ones([x.shape[0]], dtype=self.sigma_dtype)
        self.sigma_dev = self.to_device(self.sigma)
        self.ends_at_zero = self.sigma[-1] == 0.0
        self.n_steps = len(self.sigma) - 1 - (1 if (stop_at_sigma_min and self.ends_at_zero) else 0)
        if self.n_steps < 1:
            raise ValueError("stop_at_sigma_min needs at least one step before sigma = 0")
        self.x = x.to(self.dtype)
        self.method = method
        self.noise_window = tuple(float(v) for v in noise_window)
        self.sigma_steps = bool(sigma_steps)
        self.corrected_start = bool(corrected_start)
        # CFG++: where the unconditional prediction of each call is read (module doc)
        self.cfg_pp: Optional[CFGPlusPlus] = cfg_pp_source(model, uncond) if cfg_pp else None
        self.mode = [self._mode(i) for i in range(self.n_steps)]
        # the steps a solver's own formula takes (its coefficients are computed for these only)
        self.solver_steps = [i for i, m in enumerate(self.mode) if m is StepMode.SOLVER]
        # those a corrector can redo: a model output at their end is taken and read on (not
        # the last call, and not the one whose D is the result of a step to sigma = 0)
        self.correctable_steps = [i for i in self.solver_steps
                                  if i + 1 < self.n_steps and self.mode[i + 1] is not StepMode.DENOISE]

    def final_nodes(self, k: int) -> int:
        """Stored values the final Adams-Bashforth step to 0 uses for a solver of order k:
        at most 2 from a long last step (lambda at sigma_last up to ``FINAL_AB_LAMBDA``);
        k + 1 when that step is shorter than half the step before it (its length is then
        fixed by the schedule, see the module doc); else k."""
        if StepMode.FINAL_AB not in self.mode or len(self.sigma) < 3:
            return k
        if self.lam[-2] <= FINAL_AB_LAMBDA:
            return min(k, 2)
        last, before = self.sigma[-2], self.sigma[-3] - self.sigma[-2]
        return k + 1 if last < 0.5 * before else k

    def _mode(self, i: int) -> StepMode:
        if self.is_denoise_step(i):
            extrapolate = self.sigma_steps and self.mt.is_flow and self.lam[i] > FINAL_LINEAR_LAMBDA
            return StepMode.FINAL_AB if extrapolate else StepMode.DENOISE
        if not self.sigma_steps or self.method.variable is Variable.SIGMA or self.noise_on(i):
            return StepMode.SOLVER
        # In the tail (signal above noise, lambda > 0) D varies like sigma^2 along the
        # solution: a lambda-step errs by about sigma^2 h^(p+1) (h its lambda-width), a
        # sigma-step by dsigma^(p+1). Schedules that reach sigma_min linearly (flow simple)
        # or in one long step (normal) keep h of order 1 however many steps there are, so
        # only sigma-steps keep the order there. The head: see HEAD_LAMBDA.
        lam, h = self.lam[i], self.lam[i + 1] - self.lam[i]
        deep = lam > TAIL_LAMBDA
        long_tail = lam > 0.0 and h > TAIL_H
        head = (self.method.variable is Variable.LAMBDA and self.method.order >= 3 and self.mt.is_flow
                and self.lam[i + 1] < -HEAD_LAMBDA)
        return StepMode.SIGMA if (deep or long_tail or head) else StepMode.SOLVER

    def noise_on(self, i: int) -> bool:
        """Whether step i lies in the noise window (a fraction i / n of the steps)."""
        if not self.method.stochastic:
            return False
        lo, hi = self.noise_window
        f = i / (len(self.sigma) - 1)
        return lo <= f < hi

    # --- host-side helpers -----------------------------------------------------------
    def to_device(self, values: Sequence[float]) -> torch.Tensor:
        """Float64 host values as a tensor on ``x.device`` in the model's sigma dtype."""
        return torch.tensor(list(values), dtype=torch.float64).to(self.device, self.sigma_dtype)

    def is_denoise_step(self, i: int) -> bool:
        """True for a final step to sigma = 0, which returns the denoised estimate."""
        return self.sigma[i + 1] == 0.0

    def stage_sigma(self, i: int, c: float) -> float:
        """Noise level at fraction c of step i in lambda (geometric in the VE sigma)."""
        return self.mt.sigma_at(self.lam[i] + c * (self.lam[i + 1] - self.lam[i]))

    @staticmethod
    def host_pair(a: float, b: float) -> tuple:
        """The (sigma, sigma_next) arguments of a noise sampler, as CPU float64 scalars."""
        return torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)

    def noise_sampler(self, noise_sampler: Optional[NoiseSampler], noise_type: str) -> NoiseSampler:
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
        return make_noise_sampler(self.x, self.extra_args, noise_sampler, noise_type)

    def noise_factor(self, s_noise: float) -> float:
        return float(s_noise) * self.mt.noise_scale

    def rk_plans(self, tableaus: dict, steps: Iterable[int]) -> dict:
        """Runge-Kutta coefficients (:func:`~.runge_kutta.rk_plan`) of ``steps``, in sigma,
        with the tableau of the solver's order."""
        return {i: rk_plan(tableaus[self.method.order], self.sigma[i], self.sigma[i + 1], self.to_device,
                           self.mt.alpha)
                for i in steps}

    # --- the step loop ---------------------------------------------------------------
    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma) with sigma a 0-dim device tensor, in the working dtype."""
        out = self.model(x, sigma * self.s_in, **self.extra_args)
        return out if out.dtype == self.dtype else out.to(self.dtype)

    def report(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        if self.callback is not None:
            s = self.sigma_dev[i]
            self.callback({"x": x, "i": i, "sigma": s, "sigma_hat": s, "denoised": denoised})

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.out_dtype)

    def rk_step(self, x: torch.Tensor, eps0: torch.Tensor, plan: RKPlan) -> torch.Tensor:
        """One Runge-Kutta step in sigma (:func:`~.runge_kutta.rk_step`) with this run's model
        (CFG++: each stage's eps read at its shifted point)."""
        return rk_step(x, eps0, plan, self.denoise, None if self.cfg_pp is None else self.cfg_pp.shifted)

    def shifted(self, x: torch.Tensor, denoised: torch.Tensor, alpha: float) -> torch.Tensor:
        """CFG++'s shifted point of a model call at x (:mod:`.cfg_pp`); x without CFG++."""
        return x if self.cfg_pp is None else self.cfg_pp.shifted(x, denoised, alpha)

    def start_fix(self, solver: Solver) -> Optional[StartFix]:
        """The corrected start (module doc), or None where it does not apply: a multistep
        solver of order >= 3 with ``corrected_start``, at least 3 steps, a deterministic
        first step and a second step that is not the last. A first step in sigma is redone
        with the two-value Adams-Bashforth (trapezoidal) rule; a solver's own first step by
        the solver (:meth:`Solver.start_fix`)."""
        m = self.method
        if not (m.multistep and self.corrected_start and m.order >= 3 and self.n_steps >= 3):
            return None
        if self.noise_on(0) or self.mode[1] not in (StepMode.SOLVER, StepMode.SIGMA):
            return None
        if self.mode[0] is StepMode.SOLVER:
            return solver.start_fix()
        if self.mode[0] is not StepMode.SIGMA:
            return None
        s0, s1 = self.sigma[0], self.sigma[1]
        return redo_first_step(rhoab_coefficients([s1, s0], s0, s1), rhoab_coefficients([s0], s0, s1)[0])

    def run(self, solver: Solver) -> torch.Tensor:
        """The step loop (module doc): returns the sample in the input's dtype."""
        m, mode = self.method, self.mode
        # eps values are kept only if a step reads them: the solver's own, a multistep
        # solver's SIGMA steps, a flow model's final extrapolation
        sigma_ab = m.multistep and StepMode.SIGMA in mode
        final = self.final_nodes(solver.final_order())
        active = m.eps_depth > 0 or sigma_ab or StepMode.FINAL_AB in mode
        history = History(max(m.eps_depth, m.order, final) if active else 0, m.denoised_depth, final)
        # a single-step solver's SIGMA steps: Runge-Kutta with as many stages as it has
        rk = {} if m.multistep else self.rk_plans(SIGMA_STEP_TABLEAUS, [i for i, md in enumerate(mode)
                                                                        if md is StepMode.SIGMA])
        needs_eps = [active or i in rk for i in range(self.n_steps)]
        injects = [solver.injects(i) for i in range(self.n_steps)]
        fix = self.start_fix(solver)
        corrects = [solver.corrects(i) for i in range(self.n_steps)]
        if self.cfg_pp is not None and type(solver).x_at is not Solver.x_at:
            raise ValueError("cfg_pp needs a solver whose state is x")  # AMED refuses it (docs/algorithms.md)
        state = solver.initial(self.x)
        for i in trange(self.n_steps, disable=self.disable):
            x = solver.x_at(i, state)
            denoised = solver.evaluate(i, state, x)
            self.report(i, x, denoised)
            if self.cfg_pp is not None:  # the state at which (D_g, eps_u) is consistent
                x = state = self.cfg_pp.shifted(x, denoised, self.alpha[i])
            eps = (x - denoised) * self.inv_sigma[i] if needs_eps[i] else None
            history.push(self.sigma[i], eps, denoised)
            if i == 1 and fix is not None:
                state = fix(state, history)
            elif i >= 1 and corrects[i - 1]:
                state = solver.correct(i - 1, state, history)
                if eps is not None:  # the model's D stands; its eps is the one at the corrected x
                    eps = history.replace_newest_eps((state - denoised) * self.inv_sigma[i])
            if mode[i] is StepMode.DENOISE:
                state = denoised
            elif mode[i] is StepMode.FINAL_AB:
                state = history.final_step(state, self.sigma[i])
            elif mode[i] is StepMode.SIGMA and m.multistep:
                state = history.ab_step(state, self.sigma[i], self.sigma[i + 1], solver.sigma_nodes(i))
            elif mode[i] is StepMode.SIGMA:
                state = self.rk_step(state, eps, rk[i])
            else:
                state = solver.step(i, state, denoised, history)
            if injects[i]:
                history.clear_eps()
        return self.finish(solver.x_at(self.n_steps, state))
