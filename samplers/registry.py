"""The one place that describes every sampler: id, function, parameters (default, range,
description), model calls per step, stochastic or not. ComfyUI nodes, A1111 entries,
README tables and the demo are generated from :data:`SAMPLERS`.

A solver module registers itself by calling :func:`register` at import (see the bottom
of this file for the built-in list), so adding a solver touches its own module and one
line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Param", "SamplerSpec", "SAMPLERS", "register", "get", "host_name", "HOST_PREFIX"]

# Host-visible names (ComfyUI dropdown, A1111 id) are HOST_PREFIX + spec id: one rule,
# no collision with ComfyUI's seeds_2/seeds_3/er_sde/deis/ipndm or RES4LYF's deis_2m.
HOST_PREFIX = "ss_"


@dataclass(frozen=True)
class Param:
    """One user-facing parameter.

    ``choices`` makes it a combo; otherwise the kind follows the default's type
    (bool, int, float). ``minimum``/``maximum``/``step`` bound numeric inputs.
    """

    name: str
    default: Any
    description: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    choices: Optional[Tuple[str, ...]] = None

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        return "float"

    def check(self, value: Any) -> Any:
        """Validate a user value; raises ValueError naming the parameter."""
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind == "bool":
            return bool(value)
        v = int(value) if self.kind == "int" else float(value)
        if (self.minimum is not None and v < self.minimum) or (self.maximum is not None and v > self.maximum):
            raise ValueError(f"{self.name} must be in [{self.minimum}, {self.maximum}], got {value!r}")
        return v


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler.

    Attributes:
        id: stable identifier (``seeds_2``); hosts show :func:`host_name` of it.
        function: the k-diffusion-style ``sample_*`` function.
        family: node family (one SamplerCustom node per family).
        title: display name.
        summary: one line for menus and the README.
        params: user parameters, in display order.
        calls_per_step: model calls per step, an int or a function of the parameters.
        stochastic: whether it injects noise, a bool or a function of the parameters.
        dropdown: parameter values used for the host dropdown entry (the best general
            settings, from the benchmark); unspecified ones take the function default.
    """

    id: str
    function: Callable
    family: str
    title: str
    summary: str
    params: Tuple[Param, ...]
    calls_per_step: Union[int, Callable[[Mapping[str, Any]], int]] = 1
    stochastic: Union[bool, Callable[[Mapping[str, Any]], bool]] = False
    dropdown: Mapping[str, Any] = field(default_factory=dict)

    def defaults(self) -> Dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, **overrides: Any) -> Dict[str, Any]:
        """Defaults updated by ``overrides``, each value checked against its Param."""
        by_name = {p.name: p for p in self.params}
        out = self.defaults()
        for k, v in overrides.items():
            if k not in by_name:
                raise ValueError(f"{self.id} has no parameter {k!r}; it has {list(by_name)}")
            out[k] = by_name[k].check(v)
        return out

    def calls(self, **params: Any) -> int:
        p = self.resolve(**params)
        c = self.calls_per_step
        return c(p) if callable(c) else c

    def is_stochastic(self, **params: Any) -> bool:
        p = self.resolve(**params)
        s = self.stochastic
        return s(p) if callable(s) else s

    @property
    def host_name(self) -> str:
        return host_name(self.id)


SAMPLERS: Dict[str, SamplerSpec] = {}


def register(spec: SamplerSpec) -> SamplerSpec:
    if spec.id in SAMPLERS and SAMPLERS[spec.id] is not spec:
        raise ValueError(f"sampler id {spec.id!r} registered twice")
    SAMPLERS[spec.id] = spec
    return spec


def get(sampler_id: str) -> SamplerSpec:
    try:
        return SAMPLERS[sampler_id]
    except KeyError:
        raise ValueError(f"unknown sampler {sampler_id!r}; known: {sorted(SAMPLERS)}") from None


def host_name(sampler_id: str) -> str:
    return HOST_PREFIX + sampler_id


# --- parameters shared by several samplers (described once) ---------------------------
def eta_param(default: float = 1.0, maximum: float = 10.0, what: str = "0 = deterministic ODE solver, 1 = the paper's SDE") -> Param:
    return Param("eta", default, f"Stochasticity: {what}.", 0.0, maximum, 0.01)


S_NOISE = Param("s_noise", 1.0, "Scale on the injected noise (1 = exact; <1 keeps a little more detail).", 0.0, 2.0, 0.01)
NOISE_TYPE = Param(
    "noise_type", "gaussian",
    "gaussian: per-image seeded noise; brownian: Brownian-consistent noise, so the image changes little with the step count.",
    choices=("gaussian", "brownian"),
)
PREDICTION = Param(
    "prediction", "data",
    "data: data-prediction form (recommended); noise: the paper's noise-prediction algorithms (need many steps).",
    choices=("data", "noise"),
)
STOP_AT_SIGMA_MIN = Param(
    "stop_at_sigma_min", False,
    "Stop at the last positive sigma without the final denoising step (as the papers report FID).",
)


def _not_zero_eta(p: Mapping[str, Any]) -> bool:
    return p.get("eta", 0) > 0 and p.get("s_noise", 1) > 0


def _register_builtin() -> None:
    from . import er_sde, seeds

    common_sde = (S_NOISE, NOISE_TYPE, PREDICTION, STOP_AT_SIGMA_MIN)
    register(SamplerSpec(
        "seeds_1", seeds.sample_seeds_1, "seeds", "SEEDS-1",
        "First-order stochastic exponential solver (DDPM-ancestral at eta=1, DDIM at eta=0).",
        (eta_param(),) + common_sde, 1, _not_zero_eta,
    ))
    register(SamplerSpec(
        "seeds_2", seeds.sample_seeds_2, "seeds", "SEEDS-2",
        "Second-order stochastic exponential solver, 2 model calls per step.",
        (eta_param(), Param("r", 0.5, "Fraction of the step (in log-SNR) where the stage is evaluated.", 0.01, 0.99, 0.01),
         Param("variant", "phi_1", "Final-stage weights: phi_1 (tableau 2a) or phi_2 (tableau 2b).", choices=("phi_1", "phi_2")))
        + common_sde, 2, _not_zero_eta,
        dropdown={"variant": "phi_2"},  # lower W2 than phi_1 at every budget (README benchmark)
    ))
    register(SamplerSpec(
        "seeds_3", seeds.sample_seeds_3, "seeds", "SEEDS-3",
        "Third-order stochastic exponential solver, 3 model calls per step (prefers lower CFG).",
        (eta_param(), Param("r1", 1.0 / 3.0, "Fraction of the step of the first stage.", 0.01, 0.98, 0.01),
         Param("r2", 2.0 / 3.0, "Fraction of the step of the second stage (> r1).", 0.02, 0.99, 0.01))
        + common_sde, 3, _not_zero_eta,
    ))
    from .er_sde import NOISE_SCALE_FUNCTIONS

    register(SamplerSpec(
        "er_sde", er_sde.sample_er_sde, "er_sde", "ER-SDE-Solver",
        "Extended-reverse-time SDE solver, orders 1-3, 1 model call per step.",
        (
            Param("order", 3, "Solver order (1-3); the first steps warm up.", 1, 3, 1),
            Param("noise_scale_function", "sde_5",
                  "phi(s): sde_5 = s(e^{s^0.3}+10) (paper default), ode = s, original_sde = s^2, sde_1..sde_4 the paper's others.",
                  choices=tuple(NOISE_SCALE_FUNCTIONS)),
            eta_param(what="0 = ODE, 1 = the chosen noise-scale function (phi_eta = s^(1-eta) phi^eta)"),
            S_NOISE,
            Param("quadrature", "gauss", "gauss: exact float64 integrals; riemann100: the official 100-point rule.",
                  choices=("gauss", "riemann100")),
            NOISE_TYPE, STOP_AT_SIGMA_MIN,
        ),
        1, lambda p: p["noise_scale_function"] != "ode" and _not_zero_eta(p),
    ))

    from . import deis, ipndm
    from .vp_time import TAU_MAPS

    register(SamplerSpec(
        "deis", deis.sample_deis, "deis", "DEIS",
        "Diffusion exponential integrator: tAB/rhoAB/log-rho multistep (1 call per step) or rhoRK.",
        (
            Param("variant", "tab",
                  "tab: polynomial in the model's own time (paper's best); rhoab: in sigma; "
                  "logrho: in log sigma (diffusers); rhork: Runge-Kutta in sigma.",
                  choices=deis.DEIS_VARIANTS),
            Param("order", 3,
                  "Convergence order = eps values per step (paper's tAB-r is r+1, diffusers' solver_order k is k); "
                  "rhork: 1 Euler, 2 Heun, 3 Kutta, 4 RK4 (that many calls per step).",
                  1, deis.MAX_ORDER, 1),
            Param("tau_map", "auto",
                  "tab only: auto = the model's own time (discrete table, fitted VP-SDE, flow time); "
                  "vp_fit = the VP-SDE fitted to the model's sigma range.",
                  choices=TAU_MAPS),
            Param("lower_order_final", True,
                  "Multistep only: with fewer than 15 steps, last step order 1 and the one before "
                  "at most 2 (diffusers' default)."),
            STOP_AT_SIGMA_MIN,
        ),
        lambda p: p["order"] if p["variant"] == "rhork" else 1, False,
        # most accurate variant against the converged ODE at 10-50 NFE (README benchmark)
        dropdown={"variant": "logrho", "order": 3},
    ))
    register(SamplerSpec(
        "ipndm", ipndm.sample_ipndm, "ipndm", "iPNDM",
        "Improved pseudo-numerical (Adams-Bashforth) multistep solver, orders 1-4, 1 model call per step.",
        (
            Param("order", 4, "Number of eps values per step (1-4); the first steps warm up.", 1, deis.MAX_ORDER, 1),
            Param("variant", "fixed",
                  "fixed: constant-step Adams-Bashforth weights (original iPNDM); "
                  "variable: weights for the actual step sizes (full order on any schedule).",
                  choices=ipndm.IPNDM_VARIANTS),
            STOP_AT_SIGMA_MIN,
        ),
        1, False,
        dropdown={"order": 3},  # order 3 beats 4 at 5-20 NFE on the benchmark (warm-up, non-uniform steps)
    ))


_register_builtin()
