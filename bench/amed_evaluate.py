"""AMED on the digits models: error against a converged ODE solve (and FD where the digits
FD helper exists) for AMED-Solver and every AMED-Plugin, their base solvers and the best
non-learned solvers, at the same NFE, over several seeds.

    python -m seeds_samplers.bench.amed_evaluate --models digits-eps digits-flow --nfe 3 4 5 7 8 \\
        --seeds 3 --samples 64 --train

Protocol (docs/amed.md, "Results"):

* every sampler starts from the same initial latents per seed; the reference is RK4 in
  half-log-SNR on the VE-equivalent variables (``--ref-steps`` steps) down to sigma_min,
  then D(x, sigma_min) (the final step all solvers take);
* error = median over images of the per-image RMS difference to the reference (as the
  pack's benchmark); reported as mean +- std over seeds;
* AMED at NFE n: odd n = AFS, (n + 1) / 2 AMED steps, stop at sigma_min (the paper's
  protocol); even n = AFS, n / 2 AMED steps, then the final denoise;
* non-learned solvers at NFE n take as many steps as fit in n calls on each schedule in
  ``--baseline-schedules``; "best non-learned" is the best (solver, schedule) per NFE;
* predictors missing from ``amed_weights/`` are trained with ``--train`` (the command is
  stored in each file's metadata and the .json beside it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..amed.storage import load_predictor, save_predictor
from ..amed.train import TrainSettings, schedule_sigmas, train_predictor
from ..samplers.amed import sample_amed, sample_amed_plugin
from ..samplers.model_types import resolve_model_type
from .amed_train import WEIGHTS, load_model
from .compare import median_error, reference_solve

AMED_KINDS = ("amed", "dpm_2", "euler", "ipndm", "dpmpp_2m", "deis")


def amed_plan(nfe: int) -> Tuple[int, bool, bool]:
    """(sampler steps = positive sigmas, afs, stop_at_sigma_min) for an AMED run of ``nfe`` calls."""
    if nfe % 2:
        return (nfe + 1) // 2 + 1, True, True
    return nfe // 2 + 1, True, False


def reference(model: Any, x: torch.Tensor, sigmas: Sequence[float], steps: int) -> torch.Tensor:
    """The benchmark's converged ODE solve from sigmas[0] to the last positive sigma, then D there."""
    mt = resolve_model_type(model)
    pos = [s for s in mt.prepare_sigmas([float(v) for v in sigmas]) if s > 0]
    with torch.no_grad():
        y = reference_solve(model, x, pos[-1], pos[0], steps=steps, model_type=mt)
        s_end = pos[-1]
        return model(y.float(), torch.full((y.shape[0],), s_end)).to(torch.float64)


def _fd_metric() -> Optional[Callable[[torch.Tensor], float]]:
    """The digits FD (``digits/fd.py``: classifier features vs the held-out digits), if built."""
    try:
        from ..digits.fd import DigitsFD

        return DigitsFD()
    except Exception:  # noqa: BLE001 - classifier not built: FD is skipped
        return None


def baselines() -> List[Tuple[str, Callable, dict, int]]:
    """(label, function, params, model calls per interval) of the non-learned solvers."""
    import k_diffusion.sampling as K

    from ..samplers import sample_deis, sample_ipndm

    return [
        ("euler (k-diff)", K.sample_euler, {}, 1),
        ("dpm_2 (k-diff)", K.sample_dpm_2, {}, 2),
        ("dpmpp_2m (k-diff)", K.sample_dpmpp_2m, {}, 1),
        ("iPNDM o3 (ours)", sample_ipndm, {"order": 3}, 1),
        ("iPNDM-v o3 (ours)", sample_ipndm, {"order": 3, "variant": "variable"}, 1),
        ("DEIS tAB3 (ours)", sample_deis, {"order": 3}, 1),
    ]


BASE_OF = {"amed": "dpm_2 (k-diff)", "dpm_2": "dpm_2 (k-diff)", "euler": "euler (k-diff)",
           "ipndm": "iPNDM o3 (ours)", "dpmpp_2m": "dpmpp_2m (k-diff)", "deis": "iPNDM-v o3 (ours)"}


def intervals_for(nfe: int, stages: int) -> int:
    """Largest interval count whose cost (stages per interval, 1 for the last to 0) fits."""
    n = 1
    while stages * n + 1 <= nfe:
        n += 1
    return n


def predictor_name(model: str, kind: str, schedule: str, steps: int, mode: str) -> str:
    return f"{model}-{kind}-{schedule}-{steps}steps-afs-{mode}"


def get_predictor(args, model_name: str, model: Any, shape, kind: str, schedule: str, steps: int, mode: str,
                  cache: dict, log) -> Optional[Any]:
    path = WEIGHTS / (predictor_name(model_name, kind, schedule, steps, mode) + ".safetensors")
    if path.exists() and not args.retrain:
        return load_predictor(path)
    if not args.train:
        log(f"  (no predictor {path.name}; pass --train)")
        return None
    order = {"ipndm": 3, "deis": 3, "dpmpp_2m": 2}.get(kind, 1)
    lr, batch = (args.lr_time, args.batch_time) if mode == "time" else (args.lr, args.batch)
    s = TrainSettings(solver=kind, afs=True, feature_mode=mode, scale_dir=0.01, scale_time=0.0, max_order=order,
                      teacher_substeps=args.teacher_substeps, trajectories=args.trajectories, batch=batch,
                      lr=lr, seed=1000)
    sig = schedule_sigmas(model, schedule, steps)
    pred, cfg, _ = train_predictor(model, sig, s, latent_shape=shape, teacher_cache=cache)
    cmd = (f"python -m seeds_samplers amed-train --model {model_name} --schedule {schedule} --steps {steps} "
           f"--solver {kind} --feature-mode {mode} --scale-dir 0.01 --max-order {order} "
           f"--teacher-substeps {args.teacher_substeps} --trajectories {args.trajectories} --batch {batch} "
           f"--lr {lr} --seed 1000 --out amed_weights/{path.name}")
    cfg.update(model_family=model_name, cfg=None, schedule=schedule, steps=steps, command=cmd)
    save_predictor(path, pred, cfg)
    log(f"  trained {path.name}: loss {cfg['loss_before']:.4g} -> {cfg['loss_after']:.4g} ({cfg['train_seconds']} s)")
    return load_predictor(path)


def report(rows: List[dict], target_from: int = 5, target_to: int = 8) -> str:
    """Markdown tables: every AMED row beside its base solver and the best non-learned solver
    at the same NFE (error vs the converged ODE, mean +- std over seeds)."""
    out = []
    models = sorted({r["model"] for r in rows})
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        base = {(r["label"], r["nfe"], r["schedule"]): r for r in rs if r["kind"] == "baseline"}
        best = {}
        for r in rs:
            if r["kind"] == "baseline" and (r["nfe"] not in best or r["err"] < best[r["nfe"]]["err"]):
                best[r["nfe"]] = r
        fd_col = any(r.get("fd") is not None for r in rs)
        out.append(f"**{m}** (error vs converged ODE; lower is better)\n")
        out.append("| NFE | sampler | error | its base solver (same NFE and schedule) | best non-learned (same NFE, any schedule) |"
                   + (" FD |" if fd_col else ""))
        out.append("|---|---|---|---|---|" + ("---|" if fd_col else ""))
        for r in sorted((r for r in rs if r["kind"] != "baseline"), key=lambda r: (r["nfe"], r["label"])):
            kind = next((k for k in AMED_KINDS if (k == "amed" and r["label"].startswith("AMED-Solver"))
                         or r["label"].startswith(f"AMED-Plugin {k} ")), "amed")
            b_ = base.get((BASE_OF[kind], r["nfe"], r["schedule"]))
            bst = best.get(r["nfe"])
            cell = lambda x: f"{x['err']:.4f} ± {x['err_std']:.4f}"  # noqa: E731
            out.append(f"| {r['nfe']} | {r['label']} | {cell(r)} | "
                       + (f"{b_['label']}: {cell(b_)}" if b_ else "-") + " | "
                       + (f"{bst['label']} {bst['schedule']}: {cell(bst)}" if bst else "-") + " |"
                       + (f" {r['fd']:.2f} |" if fd_col and r.get("fd") is not None else (" - |" if fd_col else "")))
        if target_to in best:
            amed5 = [r for r in rs if r["kind"] == "amed" and r["nfe"] == target_from]
            if amed5:
                a5 = min(amed5, key=lambda r: r["err"])
                b8 = best[target_to]
                verdict = "meets" if a5["err"] <= b8["err"] else "misses"
                out.append(f"\nTarget (best AMED at NFE {target_from} <= best non-learned at NFE {target_to}): "
                           f"{verdict}: {a5['label']} {a5['err']:.4f} vs {b8['label']} ({b8['schedule']}) "
                           f"{b8['err']:.4f}.\n")
        out.append("")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seeds_samplers.bench.amed_evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["digits-eps", "digits-flow"])
    p.add_argument("--nfe", nargs="+", type=int, default=[3, 4, 5, 7, 8])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--schedule", default="logsnr_uniform", help="schedule of the AMED grids")
    p.add_argument("--baseline-schedules", nargs="+", default=["logsnr_uniform", "edm_rho", "uniform"])
    p.add_argument("--baselines", nargs="*", default=None, help="only the baselines whose label starts so")
    p.add_argument("--kinds", nargs="+", default=["amed", "ipndm"], help="AMED kinds at every AMED NFE")
    p.add_argument("--headline-kinds", nargs="+", default=list(AMED_KINDS), help="AMED kinds at --headline-nfe")
    p.add_argument("--headline-nfe", type=int, default=5)
    p.add_argument("--amed-nfe", nargs="+", type=int, default=[5, 3, 4, 7])
    p.add_argument("--lr-time", type=float, default=5e-3)
    p.add_argument("--batch-time", type=int, default=4)
    p.add_argument("--modes", nargs="+", default=["bottleneck"])
    p.add_argument("--time-only-kinds", nargs="*", default=["amed"], help="kinds also run in time-only mode")
    p.add_argument("--ref-steps", type=int, default=60)
    p.add_argument("--fd", action="store_true", help="also FD of the samples pooled over seeds (needs many samples)")
    p.add_argument("--train", action="store_true")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--trajectories", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--teacher-substeps", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="/tmp/amed_eval/results.json")
    p.add_argument("--report-only", action="store_true", help="print the markdown tables of --json and exit")
    a = p.parse_args(list(argv) if argv is not None else None)
    if a.report_only:
        print(report(json.loads(Path(a.json).read_text())))
        return 0
    torch.set_num_threads(a.threads)
    out_json = Path(a.json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    rows: List[dict] = json.loads(out_json.read_text()) if out_json.exists() else []
    done = {(r["model"], r["label"], r["schedule"], r["nfe"]) for r in rows}
    fd = _fd_metric() if a.fd else None
    t_start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    def save() -> None:
        out_json.write_text(json.dumps(rows, indent=1))

    for model_name in a.models:
        model, shape, _ = load_model(model_name)
        xs = []
        for seed in range(a.seeds):
            g = torch.Generator().manual_seed(seed)
            xs.append(model.prior_sample(a.samples, generator=g))
        ref_sig = schedule_sigmas(model, "logsnr_uniform", 8)
        refs = []
        for seed, x in enumerate(xs):
            cache = out_json.parent / f"ref-{model_name}-{seed}-{a.samples}-{a.ref_steps}.pt"
            if cache.exists():
                refs.append(torch.load(cache))
            else:
                refs.append(reference(model, x, ref_sig.tolist(), a.ref_steps))
                torch.save(refs[-1], cache)
        log(f"{model_name}: references ready")

        def record(label: str, schedule: str, nfe: int, run: Callable[[torch.Tensor], torch.Tensor], kind: str):
            key = (model_name, label, schedule, nfe)
            if key in done:
                return
            errs, outs, calls = [], [], []
            for x, ref in zip(xs, refs):
                before = model.calls
                with torch.no_grad():
                    outp = run(x.clone())
                calls.append(model.calls - before)
                errs.append(median_error(outp, ref))
                outs.append(outp.float())
            row = dict(model=model_name, label=label, kind=kind, schedule=schedule, nfe=nfe, calls=calls[0],
                       err=statistics.mean(errs), err_std=statistics.pstdev(errs), errs=errs,
                       fd=fd(torch.cat(outs)) if fd is not None else None)
            rows.append(row)
            done.add(key)
            save()
            log(f"  {label:34s} {schedule:15s} NFE {nfe} (calls {calls[0]}): err {row['err']:.4f} +- {row['err_std']:.4f}"
                + (f"  FD {row['fd']:.3f}" if row["fd"] is not None else ""))

        for nfe in a.nfe:
            for label, fn, params, stages in baselines():
                if a.baselines and not any(label.startswith(k) for k in a.baselines):
                    continue
                for sched in a.baseline_schedules:
                    n = intervals_for(nfe, stages)
                    sig = schedule_sigmas(model, sched, n)
                    record(label, sched, nfe, lambda x, fn=fn, sig=sig, params=params:
                           fn(model, x, sig, disable=True, **params), "baseline")
        caches: Dict[int, dict] = {}
        for nfe in a.amed_nfe:
            steps, afs, stop = amed_plan(nfe)
            cache = caches.setdefault(steps, {})
            sig = schedule_sigmas(model, a.schedule, steps)
            for kind in (a.headline_kinds if nfe == a.headline_nfe else a.kinds):
                fn = sample_amed if kind == "amed" else sample_amed_plugin
                extra = {} if kind == "amed" else {"base": kind}
                title = "AMED-Solver" if kind == "amed" else f"AMED-Plugin {kind}"
                if kind == "amed" or nfe == a.headline_nfe:
                    record(f"{title} r=1/2 (untrained)", a.schedule, nfe, lambda x, fn=fn, extra=extra:
                           fn(model, x, sig, disable=True, afs=afs, stop_at_sigma_min=stop, **extra), "untrained")
                modes = list(a.modes) + (["time"] if kind in a.time_only_kinds and "time" not in a.modes else [])
                for mode in modes:
                    pred = get_predictor(a, model_name, model, shape, kind, a.schedule, steps, mode, cache, log)
                    if pred is None:
                        continue
                    record(f"{title} [{mode}]", a.schedule, nfe, lambda x, fn=fn, pred=pred:
                           fn(model, x, sig, disable=True, predictor=pred, stop_at_sigma_min=stop), "amed")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
