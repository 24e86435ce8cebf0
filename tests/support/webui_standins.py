"""Stand-ins for the webui modules the extension touches, following the documented
behaviour of AUTOMATIC1111 v1.10.1 (``modules/sd_samplers*.py``, ``sd_schedulers.py``,
``options.py``, ``api/models.py``), written from that description for the always-run
tests. Real-host tests (tests/test_webui_hosts.py) check the same against the webuis.

Semantics kept: ``all_samplers`` is one list object that ``set_samplers()`` makes
``samplers`` and ``samplers_for_img2img`` too, and ``samplers_map`` maps lower-cased
names and aliases; ``get_sampler_and_scheduler`` is ``functools.cache``d, strips a
trailing scheduler word and silently falls back to ``samplers[0]`` for an unknown name;
``KDiffusionSampler`` takes a callable ``funcname``, reads ``sampler_extra_params`` by
the function object, passes ``sigmas`` on the CPU and ``eta``/``n``/``sigma_min`` only
when the function's signature names them; the CFG wrapper's ``forward`` has a fixed
signature (an unknown ``extra_args`` key is a TypeError) and raises
``InterruptedException`` (a BaseException) before a model call when the state is
interrupted or skipped; ``/sdapi/v1/samplers`` validates options as ``dict[str, str]``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, List

import torch

from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture
from seeds_samplers.samplers.schedules import sd_sigma_table


class InterruptedException(BaseException):
    pass


class State:
    def __init__(self):
        self.interrupted = False
        self.skipped = False
        self.sampling_step = 0
        self.sampling_steps = 0


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False,
                 category_id=None):
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.section, self.infotext, self.category_id = section, infotext, category_id
        self.comment_after = comment_after
        self.do_not_save = False

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self


class Options:
    def __init__(self):
        object.__setattr__(self, "data", {"eta_noise_seed_delta": 0})
        object.__setattr__(self, "data_labels", {})

    def __setattr__(self, key, value):
        if key in self.data or key in self.data_labels:
            self.data[key] = value
            return
        object.__setattr__(self, key, value)

    def __getattr__(self, item):
        data = object.__getattribute__(self, "data")
        if item in data:
            return data[item]
        labels = object.__getattribute__(self, "data_labels")
        if item in labels:
            return labels[item].default
        raise AttributeError(item)

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def cast_value(self, key, value):
        if value is None:
            return None
        default_value = self.data_labels[key].default
        expected_type = type(default_value)
        if expected_type == bool and value == "False":
            return False
        return expected_type(value)


def get_override_settings(opts: Options, params: dict) -> list:
    """``infotext_utils.get_override_settings``: (infotext name, option key, value) for
    every option with an infotext name whose pasted value differs from the current one."""
    res = []
    for key, info in opts.data_labels.items():
        if not info.infotext or params.get(info.infotext) is None:
            continue
        v = opts.cast_value(key, params[info.infotext])
        if v == getattr(opts, key, None):
            continue
        res.append((info.infotext, key, v))
    return res


def small_mixture(shape=(3, 8, 8), seed: int = 0) -> GaussianMixture:
    """Three isotropic Gaussians in ``shape`` with seeded random means."""
    g = torch.Generator().manual_seed(seed)
    return GaussianMixture(torch.randn((3,) + tuple(shape), generator=g, dtype=torch.float64),
                           [0.2, 0.35, 0.5], [0.5, 0.3, 0.2])


class CompVisDenoiser(torch.nn.Module):
    """k-diffusion's eps wrapper stand-in over the exact denoiser of a Gaussian mixture
    with SD1's discrete sigma table (ascending, float32, as k-diffusion keeps it)."""

    def __init__(self, mixture=None):
        super().__init__()
        self.exact = AnalyticDenoiser(mixture if mixture is not None else small_mixture(), kind="vp_discrete")
        self.register_buffer("sigmas", sd_sigma_table().to(torch.float32))

    def get_sigmas(self, n):
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        lo, hi, w = t.floor().long(), t.ceil().long(), t.frac()
        log_s = self.sigmas.log()
        return torch.cat([((1 - w) * log_s[lo] + w * log_s[hi]).exp(), torch.zeros(1)])

    def forward(self, x, sigma, **kwargs):
        return self.exact(x, sigma).to(x.dtype)


def make_host(mixture=None) -> types.SimpleNamespace:
    """Fresh stand-in modules: ``sd_samplers``, ``sd_samplers_common``,
    ``sd_samplers_kdiffusion``, ``sd_schedulers``, ``shared``, ``scripts``."""
    shared = types.ModuleType("modules.shared")
    shared.opts = Options()
    shared.state = State()
    shared.OptionInfo = OptionInfo
    shared.sd_model = types.SimpleNamespace(model=types.SimpleNamespace(conditioning_key="crossattn"))
    shared.denoiser = CompVisDenoiser(mixture)

    common = types.ModuleType("modules.sd_samplers_common")
    SamplerDataTuple = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])

    class SamplerData(SamplerDataTuple):
        def total_steps(self, steps):
            return steps * 2 if self.options.get("second_order", False) else steps

    common.SamplerData = SamplerData
    common.InterruptedException = InterruptedException

    class CFGDenoiser(torch.nn.Module):
        """Fixed forward signature; checks the state before every model call."""

        def __init__(self, sampler):
            super().__init__()
            self.sampler = sampler
            self.inner_model = shared.denoiser
            self.step = 0
            self.calls = []

        def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
            if shared.state.interrupted or shared.state.skipped:
                raise InterruptedException
            self.calls.append(sigma.detach().clone())
            self.step += 1
            denoised = self.inner_model(x, sigma)
            self.sampler.last_latent = denoised
            return denoised

    class Sampler:
        def __init__(self, funcname):
            self.funcname = funcname
            self.func = funcname
            self.extra_params = []
            self.config = None
            self.last_latent = None
            self.p = None
            self.eta = None
            self.callback_steps = []

        def callback_state(self, d):
            self.callback_steps.append(d["i"])
            shared.state.sampling_step = d["i"]

        def launch_sampling(self, steps, func):
            self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
            try:
                return func()
            except InterruptedException:
                return self.last_latent

        def initialize(self, p):
            self.p = p
            self.eta = p.eta if p.eta is not None else 1.0
            kwargs = {}
            params = inspect.signature(self.func).parameters
            for name in self.extra_params:
                if hasattr(p, name) and name in params:
                    kwargs[name] = getattr(p, name)
            if "eta" in params:
                kwargs["eta"] = self.eta
            return kwargs

    common.Sampler = Sampler

    kd = types.ModuleType("modules.sd_samplers_kdiffusion")
    kd.sampler_extra_params = {}

    class KDiffusionSampler(Sampler):
        def __init__(self, funcname, sd_model, options=None):
            super().__init__(funcname)
            self.extra_params = kd.sampler_extra_params.get(funcname, [])
            self.options = options or {}
            if not callable(funcname):
                raise ValueError(f"no k-diffusion function {funcname!r} in the stand-in")
            self.func = funcname
            self.model_wrap_cfg = CFGDenoiser(self)
            self.model_wrap = self.model_wrap_cfg.inner_model

        def get_sigmas(self, p, steps):
            name = p.scheduler or "Automatic"
            if name == "Automatic":
                name = self.config.options.get("scheduler", None)
            sched = schedulers.schedulers_map.get(name)
            if sched is None or sched.function is None:
                return self.model_wrap.get_sigmas(steps).cpu()
            kw = {"sigma_min": self.model_wrap.sigmas[0].item(), "sigma_max": self.model_wrap.sigmas[-1].item()}
            if sched.need_inner_model:
                kw["inner_model"] = self.model_wrap
            p.extra_generation_params["Schedule type"] = sched.label
            return sched.function(n=steps, **kw, device=torch.device("cpu")).cpu()

        def _call(self, p, x, sigmas, steps):
            kwargs = self.initialize(p)
            params = inspect.signature(self.func).parameters
            if "n" in params:
                kwargs["n"] = steps
            if "sigma_min" in params:
                kwargs["sigma_min"] = self.model_wrap.sigmas[0].item()
                kwargs["sigma_max"] = self.model_wrap.sigmas[-1].item()
            if "sigmas" in params:
                kwargs["sigmas"] = sigmas  # on the CPU, as A1111 passes them
            self.last_latent = x
            extra_args = {"cond": None, "image_cond": None, "uncond": None, "cond_scale": p.cfg_scale,
                          "s_min_uncond": 0.0}
            return self.launch_sampling(steps, lambda: self.func(
                self.model_wrap_cfg, x, extra_args=extra_args, disable=True, callback=self.callback_state, **kwargs))

        def sample(self, p, x, steps=None):
            steps = steps or p.steps
            sigmas = self.get_sigmas(p, steps)
            return self._call(p, x * sigmas[0], sigmas, steps)

        def sample_img2img(self, p, x, noise, steps, t_enc):
            sigmas = self.get_sigmas(p, steps)
            sched = sigmas[steps - t_enc - 1:]
            return self._call(p, x + noise * sched[0], sched, t_enc)

    kd.KDiffusionSampler = KDiffusionSampler

    def _euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
        sigmas = sigmas.to(x.device)
        for i in range(len(sigmas) - 1):
            denoised = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **extra_args)
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
            if callback is not None:
                callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        return x

    kd.sample_euler = _euler

    schedulers = types.ModuleType("modules.sd_schedulers")

    @dataclass
    class Scheduler:
        name: str
        label: str
        function: Any
        default_rho: float = -1
        need_inner_model: bool = False
        aliases: list = None

    def _karras(n, sigma_min, sigma_max, device, rho=7.0):
        ramp = torch.linspace(0, 1, n)
        s = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
        return torch.cat([s, torch.zeros(1)]).to(device)

    schedulers.Scheduler = Scheduler
    schedulers.schedulers = [
        Scheduler("automatic", "Automatic", None),
        Scheduler("uniform", "Uniform", None, need_inner_model=True),
        Scheduler("karras", "Karras", _karras, default_rho=7.0),
        Scheduler("sgm_uniform", "SGM Uniform", None, need_inner_model=True, aliases=["SGMUniform"]),
        Scheduler("simple", "Simple", None), Scheduler("normal", "Normal", None), Scheduler("ddim", "DDIM", None),
        Scheduler("beta", "Beta", None),
    ]
    schedulers.schedulers_map = {**{x.name: x for x in schedulers.schedulers},
                                 **{x.label: x for x in schedulers.schedulers}}

    sd = types.ModuleType("modules.sd_samplers")
    sd.all_samplers = [
        SamplerData(label, lambda model, f=f: KDiffusionSampler(f, model), aliases, options)
        for label, f, aliases, options in [
            ("DPM++ 2M", _euler, ["k_dpmpp_2m"], {"scheduler": "karras"}),
            ("Euler", _euler, ["k_euler"], {}),
            ("DEIS", _euler, ["deis"], {}),  # Forge / reForge built-ins our labels must not take
            ("IPNDM", _euler, ["ipndm"], {}),
            ("ER SDE", _euler, [], {}),
            ("SEEDS 2 DP", _euler, [], {}),
        ]
    ]
    sd.all_samplers_map = {x.name: x for x in sd.all_samplers}
    sd.samplers = sd.samplers_for_img2img = []
    sd.samplers_map = {}
    sd.set_samplers_calls = 0

    def set_samplers():
        sd.set_samplers_calls += 1
        sd.samplers = sd.all_samplers
        sd.samplers_for_img2img = sd.all_samplers
        sd.samplers_map.clear()
        for sampler in sd.all_samplers:
            sd.samplers_map[sampler.name.lower()] = sampler.name
            for alias in sampler.aliases:
                sd.samplers_map[alias.lower()] = sampler.name

    def find_sampler_config(name):
        return sd.all_samplers_map.get(name)

    @functools.cache
    def get_sampler_and_scheduler(sampler_name, scheduler_name):
        default = sd.samplers[0]
        found = schedulers.schedulers_map.get(scheduler_name, schedulers.schedulers[0])
        name = sampler_name or default.name
        for s in schedulers.schedulers:
            for option in [s.label, s.name, *(s.aliases or [])]:
                if name.endswith(" " + option):
                    found = s
                    name = name[:-(len(option) + 1)]
                    break
        sampler = sd.all_samplers_map.get(name, default)
        return sampler.name, found.label

    def create_sampler(name, model=None):
        config = find_sampler_config(name)
        sampler = config.constructor(model)
        sampler.config = config
        return sampler

    sd.set_samplers = set_samplers
    sd.find_sampler_config = find_sampler_config
    sd.get_sampler_and_scheduler = get_sampler_and_scheduler
    sd.create_sampler = create_sampler
    set_samplers()

    scripts = types.ModuleType("modules.scripts")

    class Script:
        pass

    scripts.Script = Script
    scripts.AlwaysVisible = object()

    return types.SimpleNamespace(sd_samplers=sd, sd_samplers_common=common, sd_samplers_kdiffusion=kd,
                                 sd_schedulers=schedulers, shared=shared, scripts=scripts)


def host_modules(host) -> dict:
    """The mapping ``setup_webui`` takes, with plain stand-in UI components."""
    return dict(sd_samplers=host.sd_samplers, sd_samplers_common=host.sd_samplers_common,
                sd_samplers_kdiffusion=host.sd_samplers_kdiffusion, sd_schedulers=host.sd_schedulers,
                shared=host.shared, scripts=host.scripts,
                components={k: k for k in ("checkbox", "dropdown", "slider", "number")})


def api_samplers(sd) -> List[dict]:
    """``GET /sdapi/v1/samplers`` on A1111/reForge: options validated as dict[str, str]
    (pydantic 1 coerces scalars to str and rejects a list or dict: HTTP 500 for all)."""
    out = []
    for s in sd.all_samplers:
        options = {}
        for k, v in s.options.items():
            if not isinstance(v, (str, int, float, bool)):
                raise TypeError(f"options[{k!r}] of {s.name!r} is not a str: {v!r}")
            options[k] = str(v)
        out.append({"name": s.name, "aliases": list(s.aliases), "options": options})
    return out


class Processing:
    """The ``p`` fields a sampler reads."""

    def __init__(self, seeds, steps=6, scheduler="Automatic", rng=None, eta=None, cfg_scale=1.0):
        self.seeds = list(seeds)
        self.seed = self.seeds[0]
        self.steps = steps
        self.scheduler = scheduler
        self.hr_scheduler = None
        self.is_hr_pass = False
        self.extra_generation_params = {}
        self.eta = eta
        self.cfg_scale = cfg_scale
        self.rng = rng


class ImageRNG:
    """``rng.ImageRNG``: one CPU generator per image seed; ``next()`` ignores shapes."""

    def __init__(self, shape, seeds):
        self.shape = tuple(shape)
        self.seeds = list(seeds)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.calls = 0

    def next(self):
        self.calls += 1
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])


def make_classic_host(mixture=None) -> types.SimpleNamespace:
    """Stand-ins for Forge Classic (an A1111 1.8 base): no ``sd_schedulers`` (None); the
    schedule is the setting ``k_sched_type`` (label "Scheduler type", infotext "Schedule
    type", a dropdown whose choices list is fixed when the option is defined), which
    ``KDiffusionSampler.get_sigmas`` looks up in ``sd_samplers_kdiffusion.k_diffusion_scheduler``
    (``"Automatic"`` maps to None: the model's own schedule) and calls as
    ``fn(n=, sigma_min=, sigma_max=, device=)`` with the model's range and no model;
    ``CFGDenoiserKDiffusion(sampler).inner_model`` is the wrapper its samplers use;
    ``p`` has no ``scheduler`` field."""
    host = make_host(mixture)
    kd, shared = host.sd_samplers_kdiffusion, host.shared
    kd.k_diffusion_scheduler = {"Automatic": None, "karras": host.sd_schedulers.schedulers_map["karras"].function}
    shared.opts.add_option("k_sched_type", OptionInfo("Automatic", "Scheduler type", "dropdown",
                                                      {"choices": list(kd.k_diffusion_scheduler)},
                                                      infotext="Schedule type"))

    class CFGDenoiserKDiffusion(torch.nn.Module):
        def __init__(self, sampler):
            super().__init__()
            self.sampler = sampler

        @property
        def inner_model(self):
            return shared.denoiser

    kd.CFGDenoiserKDiffusion = CFGDenoiserKDiffusion

    class KDiffusionSampler(kd.KDiffusionSampler):
        def get_sigmas(self, p, steps):
            name = shared.opts.k_sched_type
            if name == "Automatic":
                return self.model_wrap.get_sigmas(steps).cpu()
            p.extra_generation_params["Schedule type"] = name
            return kd.k_diffusion_scheduler[name](n=steps, sigma_min=self.model_wrap.sigmas[0].item(),
                                                  sigma_max=self.model_wrap.sigmas[-1].item(),
                                                  device=torch.device("cpu")).cpu()

    kd.KDiffusionSampler = KDiffusionSampler
    host.sd_schedulers = None
    return host


class ClassicProcessing(Processing):
    """Forge Classic's ``p``: no ``scheduler`` / ``hr_scheduler`` fields."""

    def __init__(self, seeds, **kw):
        super().__init__(seeds, **kw)
        del self.scheduler, self.hr_scheduler
