"""Run with a Forge-2-style webui's own Python (Forge Neo), by file path, from
tests/test_webui_hosts.py: the webui's real flow predictors (no weights needed) behind its
real ``ForgeScheduleLinker``, as a sampler sees them, against the package's own flow model
type. Prints one JSON object.

    python webui_flow_check.py WEBUI_ROOT PACKAGE_PARENT

For each predictor: the model type the extension reads (kind, range, sigma table vs the
predictor's), every schedule of ours over it, and, for the discrete-flow predictor whose
sigmas are those of the package's exact flow test model (``bench.gmm.AnalyticDenoiser``,
kind "flow", the same shift), every sampler run through the detected model type vs the
test model's own: the largest difference of the results.
"""

import json
import os
import sys
import types


def main(root, package_parent):
    sys.path[:0] = [root, os.path.join(root, "modules_forge", "packages"), package_parent]
    import torch
    from backend.modules import k_prediction
    from k_diffusion.external import ForgeScheduleLinker

    from seeds_samplers.bench.gmm import AnalyticDenoiser, GaussianMixture
    from seeds_samplers.samplers.registry import SAMPLERS, SCHEDULES
    from seeds_samplers.webui.model_type import detect_model_type
    from seeds_samplers.webui.naming import schedule_settings
    from seeds_samplers.webui.registration import scheduler_function

    torch.set_num_threads(1)
    shift = 3.0
    predictors = {
        "PredictionFlux": k_prediction.PredictionFlux(seq_len=16),
        "PredictionDiscreteFlow": k_prediction.PredictionDiscreteFlow(
            types.SimpleNamespace(sampling_settings={"shift": shift})),
    }
    g = torch.Generator().manual_seed(0)
    mixture = GaussianMixture(torch.randn(3, 4, 4, 4, generator=g, dtype=torch.float64), [0.2, 0.35, 0.5],
                              [0.5, 0.3, 0.2])
    exact = AnalyticDenoiser(mixture, kind="flow", shift=shift)
    out = {}
    for name, pred in predictors.items():
        linker = ForgeScheduleLinker(pred)

        class CFG:  # the webui's CFG wrapper: the denoiser wrapper as inner_model, no model type of its own
            inner_model = linker

            def __call__(self, x, sigma, **kw):
                return exact(x, sigma)

        model = CFG()
        mt = detect_model_type(model)
        table = pred.sigmas.to(torch.float64)
        row = {"kind": mt.kind, "sigma_min": mt.sigma_min, "sigma_max": mt.sigma_max,
               "pred_sigma_min": float(pred.sigma_min), "pred_sigma_max": float(pred.sigma_max),
               "table_diff": float((mt.sigma_table - table).abs().max()), "schedules": {}}
        for spec in SCHEDULES.values():
            fn = scheduler_function(spec, schedule_settings(spec), types.SimpleNamespace(opts=None))
            s = fn(8, float(linker.sigmas[0]), float(linker.sigmas[-1]), "cpu", inner_model=linker)
            row["schedules"][spec.id] = [float(v) for v in s]
        if name == "PredictionDiscreteFlow":
            row["samplers"] = {}
            first = next(iter(SCHEDULES.values()))  # logSNR uniform: steps spread over the whole range
            sigmas = scheduler_function(first, schedule_settings(first), types.SimpleNamespace(opts=None))(
                8, float(linker.sigmas[0]), float(linker.sigmas[-1]), "cpu", inner_model=linker)
            x = exact.prior_sample(16, float(sigmas[0]), torch.Generator().manual_seed(1))
            for spec in SAMPLERS.values():
                results = []
                for model_type in (mt, exact.seeds_model_type):
                    gen = torch.Generator().manual_seed(2)
                    params = dict(spec.menu_settings())
                    kw = {}
                    if spec.is_stochastic(**params):
                        kw["noise_sampler"] = lambda *a, gen=gen: torch.randn(x.shape, generator=gen,
                                                                               dtype=x.dtype)
                    results.append(spec.function(model, x.clone(), sigmas.to(x.dtype), extra_args={},
                                                 callback=None, disable=True, model_type=model_type, **params, **kw))
                row["samplers"][spec.id] = {"diff": float((results[0] - results[1]).abs().max()),
                                            "finite": bool(torch.isfinite(results[0]).all()),
                                            "spread": float(results[0].std())}
        out[name] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
