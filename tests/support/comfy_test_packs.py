"""Test-only ComfyUI custom nodes, as source text the real-ComfyUI tests write into the
server's custom_nodes folders (they run inside ComfyUI, never in the test process).

* :data:`SNAPSHOT_PACK` copies the sampler and scheduler lists into its own combo output
  at its import, as "sampler selector" packs do; loaded before ours, it shows what such a
  pack sees.
* :data:`PROBE_PACK` (loaded after ours; fill in ``pack_module``, the ``sys.modules`` key
  ComfyUI gives our pack) records what a sampler entry receives, counts and interrupts
  model calls, and checks decoded images.
"""

SNAPSHOT_PACK = '''
import comfy.samplers

class SSTestSamplerSnapshot:
    SAMPLERS = comfy.samplers.SAMPLER_NAMES.copy()
    SCHEDULERS = comfy.samplers.SCHEDULER_NAMES.copy()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (cls.SAMPLERS,), "scheduler": (cls.SCHEDULERS,)}}

    RETURN_TYPES = (SAMPLERS, SCHEDULERS)
    RETURN_NAMES = ("sampler_name", "scheduler")
    FUNCTION = "pick"
    CATEGORY = "tests"

    def pick(self, sampler_name, scheduler):
        return (sampler_name, scheduler)

NODE_CLASS_MAPPINGS = {"SSTestSamplerSnapshot": SSTestSamplerSnapshot}
'''

# Probes, loaded after our pack. PACK_MODULE is the sys.modules key ComfyUI gives our pack.
PROBE_PACK = '''
import json, math, sys, time
import torch
import comfy.samplers
import comfy.model_management

PACK_MODULE = %(pack_module)r


def _append(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\\n")


class SSTestProbeSampler:
    """Runs a menu entry (by name, as KSampler would) and records what it sees."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (comfy.samplers.SAMPLER_NAMES,), "report": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get"
    CATEGORY = "tests"

    def get(self, sampler_name, report):
        inner = comfy.samplers.sampler_object(sampler_name)
        fn = inner.sampler_function

        def probe(model, x, sigmas, extra_args=None, callback=None, disable=None, **kw):
            pack = sys.modules[PACK_MODULE]
            mt = pack.nodes.model_type.comfy_model_type(model)
            ms = model.inner_model.model_patcher.get_model_object("model_sampling")
            mask = extra_args.get("denoise_mask")
            rec = {"sampler": sampler_name, "calls": 0, "same_mask": [], "seeds": [], "keys": [],
                   "callbacks": [], "seed": extra_args.get("seed"), "has_mask": mask is not None,
                   "kind": mt.kind, "sigma_min": mt.sigma_min, "sigma_max": mt.sigma_max,
                   "flow_first_sigma": mt.flow_first_sigma, "noise_scale": mt.noise_scale,
                   "ms_classes": [c.__name__ for c in type(ms).__mro__],
                   "ms_sigma_min": float(ms.sigma_min), "ms_sigma_max": float(ms.sigma_max),
                   "ms_percent_1e4": float(ms.percent_to_sigma(1e-4)),
                   "ms_noise_scale": float(getattr(ms, "noise_scale", 1.0)),
                   "sigmas": [float(s) for s in sigmas]}

            class Wrapped:
                inner_model = model.inner_model

                def __call__(self, xx, sigma, **ea):
                    rec["calls"] += 1
                    rec["same_mask"].append(ea.get("denoise_mask") is mask)
                    rec["seeds"].append(ea.get("seed"))
                    rec["keys"] = sorted(ea)
                    return model(xx, sigma, **ea)

            def cb(d):
                rec["callbacks"].append({"i": d["i"], "keys": sorted(d)})
                if callback is not None:
                    callback(d)

            out = fn(Wrapped(), x, sigmas, extra_args=extra_args, callback=cb, disable=disable, **kw)
            rec["finite"] = bool(torch.isfinite(out).all())
            if rec["seed"] is not None:  # the noise comes from extra_args["seed"], nowhere else
                torch.manual_seed(12345)  # a different global RNG state must not matter
                again = fn(model, x, sigmas, extra_args=dict(extra_args), disable=True, **kw)
                other = fn(model, x, sigmas, extra_args=dict(extra_args, seed=rec["seed"] + 1), disable=True, **kw)
                rec["same_seed_same_result"] = bool(torch.equal(again, out))
                rec["other_seed_differs"] = not bool(torch.equal(other, out))
            _append(report, rec)
            return out

        return (comfy.samplers.KSAMPLER(probe, {}, inner.inpaint_options),)


class SSTestModelCalls:
    """Records every UNet call; optionally sleeps per call and/or interrupts at call N."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "report": ("STRING", {"default": ""}),
                             "interrupt_at": ("INT", {"default": 0, "min": 0, "max": 100000}),
                             "sleep": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "tests"

    def patch(self, model, report, interrupt_at, sleep):
        m = model.clone()
        state = {"n": 0}

        def wrapper(apply_model, args):
            state["n"] += 1
            n = state["n"]
            _append(report, {"call": n, "t": time.time()})
            if interrupt_at and n == interrupt_at:
                comfy.model_management.interrupt_current_processing(True)
            if sleep:
                time.sleep(sleep)
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(wrapper)
        return (m,)


class SSTestImageCheck:
    """Output node: fails on a non-finite image and reports its statistics."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "label": ("STRING", {"default": ""})}}

    RETURN_TYPES = ()
    FUNCTION = "check"
    OUTPUT_NODE = True
    CATEGORY = "tests"

    def check(self, images, label):
        finite = bool(torch.isfinite(images).all())
        if not finite:
            raise ValueError(f"{label}: image has NaN or inf")
        stats = {"label": label, "finite": finite, "shape": list(images.shape), "mean": float(images.mean()),
                 "std": float(images.std()), "sum": float(images.double().sum())}
        return {"ui": {"ss_check": [stats]}}


NODE_CLASS_MAPPINGS = {"SSTestProbeSampler": SSTestProbeSampler, "SSTestModelCalls": SSTestModelCalls,
                       "SSTestImageCheck": SSTestImageCheck}
'''
