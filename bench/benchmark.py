"""``python -m seeds_samplers bench``: distance to the true distribution vs model calls on
several test models, the error against the converged ODE, a parameter sweep, and the
sampler overhead.

Quality (issue "benchmark that cannot be gamed by one model or one seed"): on every test
model of :mod:`.models` (two exact Gaussian mixtures in VP and flow form, and the trained
digits networks), each registered sampler at its menu entry's settings, k-diffusion's euler,
euler_ancestral, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m_sde, dpmpp_sde, lms and heun, and --
when ``COMFYUI_ROOT`` names a ComfyUI checkout -- ComfyUI's own seeds_2, seeds_3, er_sde,
sa_solver, dpmpp_2m_sde, dpmpp_2m_sde_heun, res_multistep, deis and ipndm (:mod:`.comfy`), on the host schedules by their
ComfyUI names (:mod:`.host_schedules`), at several NFE budgets, for several noise seeds
(mean ± spread over seeds). Distance: W2 to the exact mixture, or the Frechet distance
on classifier features for the digits (:mod:`seeds_samplers.digits.fd`), each beside its
floor (exact / real samples at the same count). Deterministic solvers also get the RMS
error against a converged probability-flow ODE solve.

On the trained models (digits-eps, digits-flow, patches-eps, patches-flow) the quality tables are decided
tables (:mod:`.decide`): KID at 2,000 samples per seed, paired over seeds, with their floor
and minimum detectable difference, after a screening pass that keeps the best anchors, one
table per schedule x NFE x kind (stochastic / deterministic). The guided models (digits-cfg1, digits-cfg3, digits-cfg6: the
class-conditional digits network under the hosts' classifier-free guidance) get the same
tables, with the per-class KID and the accuracy on the requested digit, when named in --models.
With ``--yardstick limit`` the trained models' tables measure the solve instead of the
distance to the data: the distance to the converged process of the same model (the ODE's
limit from each latent, the SDE's law; :mod:`.limits`), which under guidance is what ranks
solvers by accuracy.

Sweep: ``--sweep SAMPLER --set name=v1,v2 ...`` runs every combination of the given
parameter values (others at the menu entry's settings) on the test models at NFE 5, 8, 10,
20 and prints mean ± spread per model x NFE and an aggregate rank; on the trained models by
KID from the same latents and noise (the decided tables' paired design and cache; with
``--yardstick limit`` by the distance to the converged process instead), with
``--anchors`` also the best configuration against the best anchor as a paired difference;
with ``--yardstick path --between-steps`` also, per NFE, how far the shared SDE solved on the
paths known only at a configuration's own sigmas lies from the path solution (the part of a
row's distance that no weighing of the model calls removes; :mod:`.limits`).

Overhead: sampler-side time per model call with a near-zero-cost model on an SDXL-size
latent (1x4x128x128), every configuration beside k-diffusion's dpmpp_2m, dpmpp_2m_sde
and euler_ancestral, measured in the same run, printed as ratios to dpmpp_2m.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from .host_schedules import HOST_SCHEDULES
from .models import DEFAULT_MODELS, DEFAULT_SCHEDULE, MODELS
from .overhead import overhead, overhead_markdown
from .quality import quality, quality_cells, quality_section  # noqa: F401 - quality: tests/test_project.py
from .decide import TRAINED, YARDSTICKS, write_decided
from .pick import update_readme
from .report import plot_mean_sd, replace_section_if_present, update_section
from .sweep import rank_table, sweep, sweep_grid  # noqa: F401 - rank_table, sweep_grid: tests/test_bench.py
from .targets import _verdict, target_lines  # noqa: F401 - tests/test_bench.py imports them from here

DEFAULT_BUDGETS = (4, 5, 8, 10, 20, 50)
SWEEP_BUDGETS = (5, 8, 10, 20)
DOC = Path("docs") / "benchmark.md"
DOC_HEADER = """# Benchmark

Written by `python -m seeds_samplers bench` (each section names the command that wrote it;
do not edit by hand). Lower is better everywhere. Cells are mean ± spread (sample standard
deviation) over noise seeds; a seed fixes the initial latents and the noise stream, the
same for every solver. W2: per-dimension 2-Wasserstein distance to the exact Gaussian
mixture (`bench/metrics.py`). FD: Fréchet distance of the digit classifier's penultimate
features to the 1,000 held-out digits (`digits/fd.py`); its *floor* is the FD of as many
real training digits. A number in parentheses is the measured call count where a solver
cannot spend the budget exactly. Schedules are the hosts' own, by their ComfyUI names
(`bench/host_schedules.py`, checked against a ComfyUI checkout by `tests/test_bench.py`).

Test models (`bench/models.py`): `photo8` / `photo8-flow`, the 8-photo mixture in SD's
discrete VP parameterisation and as a flow model (shift 3); `many` / `many-flow`, 100 digits
as means with stds 0.03-0.08 (many components, small spread); `digits-eps` / `digits-flow`,
the trained U-Nets (`seeds_samplers.digits`). Anchors: k-diffusion's samplers from the
`k-diffusion` package (on flow models they run on the model's own sigmas, as that package
does), and, when `COMFYUI_ROOT` names a ComfyUI checkout, ComfyUI's own samplers run in
that checkout's Python (`COMFYUI_PYTHON`; `bench/comfy.py`, arrays exchanged through a
file). The "Targets" lines check the goals of the project's benchmark issue: at 10 and 20
calls our best stochastic menu entry against every stochastic anchor, and at 5 and 8
calls our best deterministic entry against ComfyUI's `res_multistep` and k-diffusion's
`dpmpp_2m`. The verdict is paired over seeds (same latents and noise seed for both):
"met" needs the mean per-seed difference to exceed its spread (sections written before
this rule compare the mean ± spread intervals instead).

Commands:

```bash
python -m seeds_samplers bench --readme README.md                    # every model, default budgets
python -m seeds_samplers bench --models digits-eps --schedules karras normal --budgets 5 8 10 20
COMFYUI_ROOT=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/comfy-venv/bin/python python -m seeds_samplers bench ...
python -m seeds_samplers bench --sweep seeds_3 --set eta=0,0.5,1 --set s_noise=0.9,1 --anchors
```

The sweep runs every combination of the `--set` values (other parameters at the menu
entry's settings) on the chosen models (default: all) at NFE 5, 8, 10, 20 and prints mean ± spread
per model × NFE and an aggregate rank (mean rank over all cells, and the geometric mean of
the ratio to the best configuration of each cell); `--anchors` ranks the k-diffusion /
ComfyUI samplers of the same kind (stochastic or not) alongside. On a shared 2-core CPU,
pass `--threads 1`: the digits U-Net costs about 3-8 ms per sample and call.
"""


# --- command -----------------------------------------------------------------------------


def _command(argv: Sequence[str]) -> str:
    return "python -m seeds_samplers bench " + " ".join(shlex.quote(a) for a in argv)


def readme_summary(doc: Path) -> str:
    """The README's bench section: a pointer to the full tables and every target line."""
    text = doc.read_text()
    out = [f"Command: `python -m seeds_samplers bench --readme README.md` writes the full tables and plots to "
           f"[{doc.as_posix()}]({doc.as_posix()}); the target lines of every test model, copied from there:", ""]
    for m in re.finditer(r"<!-- (bench-model-[^ ]+):start -->(.*?)<!-- \1:end -->", text, re.S):
        body = m.group(2)
        head = re.search(r"^### (.*)$", body, re.M)
        targets = [ln for ln in body.splitlines() if ln.startswith("- target")]
        image = re.search(r"!\[[^\]]*\]\(images/([^)]+)\)", body)
        if head:
            out += [f"**{head.group(1)}**", ""] + (targets or ["- (no target lines: no anchors in this run)"]) + [""]
        if image:
            out += [f"![{image.group(1)}](docs/images/{image.group(1)})", ""]
    return "\n".join(out)


class _doc_lock:
    """An exclusive advisory lock beside ``path`` (POSIX; a no-op elsewhere)."""

    def __init__(self, path: Path):
        import hashlib
        import tempfile

        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        self.path = Path(tempfile.gettempdir()) / f"seeds_samplers_bench_{digest}.lock"

    def __enter__(self):
        self.f = None
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = open(self.path, "w")
            fcntl.flock(self.f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS,
                    help="test models (default: all but the guided digits-cfg*, which are asked for by name)")
    ap.add_argument("--schedules", nargs="+", default=None,
                    help=f"host schedules ({', '.join(HOST_SCHEDULES)}), registry ids, or 'all' "
                         "(default: each model's own: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_SCHEDULE.items()) + ")")
    ap.add_argument("--budgets", type=int, nargs="+", default=None,
                    help=f"NFE budgets (default {list(DEFAULT_BUDGETS)}; sweep {list(SWEEP_BUDGETS)})")
    ap.add_argument("--seeds", type=int, default=3, help="noise seeds per cell (default 3)")
    ap.add_argument("--samples", type=int, default=1024, help="samples per seed on the mixtures (default 1024)")
    ap.add_argument("--digits-samples", type=int, default=256,
                    help="samples per seed on the trained models in a sweep (KID, paired; default 256)")
    ap.add_argument("--trained-samples", type=int, default=2000,
                    help="samples per seed of the decided tables on the trained models (default 2000)")
    ap.add_argument("--screen-samples", type=int, default=400,
                    help="samples (one seed) of the screening pass of a decided table (default 400)")
    ap.add_argument("--keep", type=int, default=4, help="anchors a screening pass keeps (default 4)")
    ap.add_argument("--kinds", nargs="+", default=["stochastic", "deterministic"],
                    choices=("stochastic", "deterministic"), help="decided tables: which samplers (default both)")
    ap.add_argument("--yardstick", choices=YARDSTICKS, default="data",
                    help="decided tables and sweeps on the trained models: score by the KID to the held-out images "
                         "(data, default), by the distance to the converged process of the same model (limit, "
                         "bench/limits.py), or, stochastic samplers only, per sample to the SDE's solution on the "
                         "same Brownian path (path)")
    ap.add_argument("--ref-samples", type=int, default=None,
                    help="latents per seed for the ODE-error reference (default 256 mixtures, 32 digits; 0 = off)")
    ap.add_argument("--ref-steps", type=int, default=None,
                    help="RK4 steps of the converged ODE reference (default 400 mixtures, 48 digits)")
    ap.add_argument("--variants", action="store_true", help="also each sampler's eta=0 form and variant choices")
    ap.add_argument("--no-comfy", action="store_true", help="skip ComfyUI's samplers even when COMFYUI_ROOT is set")
    ap.add_argument("--sweep", metavar="SAMPLER", default=None, help="sweep this sampler's parameters (see --set)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=V1,V2",
                    help="sweep values of one parameter (repeatable; others at the menu entry's settings)")
    ap.add_argument("--anchors", nargs="*", default=None, metavar="NAME",
                    help="sweep: also rank the anchors of the same kind (all of them, or only those named, "
                         "e.g. dpmpp_2m_sde sa_solver)")
    ap.add_argument("--between-steps", action="store_true",
                    help="sweep with --yardstick path: also the distance to the path solution of the shared SDE "
                         "solved on the paths known only at a configuration's own sigmas (first seed; what no "
                         "weighing of the model calls removes)")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--readme", type=Path, default=None,
                    help="write docs/benchmark.md and docs/images/bench_* beside this README and update its "
                         "bench and overhead sections")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    seeds = list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    schedules = None
    if args.schedules:
        schedules = list(HOST_SCHEDULES) if args.schedules == ["all"] else args.schedules
    command = _command(argv)

    if args.sweep:
        try:
            md, _ = sweep(args.sweep, args.sets, args.models, schedules, args.budgets or SWEEP_BUDGETS, seeds,
                          args.samples, args.digits_samples, args.anchors, not args.no_comfy,
                          yardstick=args.yardstick, between_steps=args.between_steps)
        except ValueError as e:
            ap.error(str(e))
        md = f"Command: `{command}`\n\n" + md + "\n"
        (args.out / f"sweep_{args.sweep}.md").write_text(md)
        print("\n" + md)
        if args.readme:
            doc = args.readme.parent / DOC
            update_section(doc, f"sweep-{args.sweep}", f"## Sweep: {args.sweep}\n\n" + md, DOC_HEADER)
            print(f"updated {doc}")
        return 0

    budgets = args.budgets or list(DEFAULT_BUDGETS)
    if not args.skip_quality:
        for name in args.models:
            for schedule in (schedules or [DEFAULT_SCHEDULE[name]]):
                if name in TRAINED:
                    write_decided(name, schedule, budgets, args.kinds, seeds, args.trained_samples,
                                  args.screen_samples, args.keep, not args.no_comfy, command, args.out,
                                  args.readme.parent / DOC if args.readme else None, DOC_HEADER, _doc_lock,
                                  yardstick=args.yardstick)
                    if args.readme:  # the README's overview of the decided tables (bench/pick.py)
                        with _doc_lock(args.readme.parent / DOC):
                            update_readme(args.readme)
                    continue
                digits = name.startswith("digits")
                n = args.digits_samples if digits else args.samples
                ref_n = args.ref_samples if args.ref_samples is not None else (32 if digits else 256)
                image = f"bench_{name}_{schedule}.png"

                def write(cells, floor, model, done, name=name, schedule=schedule, n=n, ref_n=ref_n, image=image):
                    plot_mean_sd(cells, args.out / image, f"{model.title}, {schedule}: {model.metric} "
                                 f"(mean ± spread over {len(seeds)} seeds)", model.metric, floor=floor)
                    body = quality_section(model, schedule, cells, floor, list(done), n, seeds, command, image,
                                           min(ref_n, n))
                    if list(done) != list(budgets):
                        body += (f"\n\n(Partial: the run was still going; budgets {list(done)} of "
                                 f"{list(budgets)} are done.)")
                    (args.out / f"bench_{name}_{schedule}.md").write_text(body + "\n")
                    print("\n" + body + "\n", flush=True)
                    if args.readme:  # write as we go: a long run keeps what it finished
                        doc = args.readme.parent / DOC
                        images = doc.parent / "images"
                        images.mkdir(parents=True, exist_ok=True)
                        (images / image).write_bytes((args.out / image).read_bytes())
                        with _doc_lock(doc):  # parallel bench runs may share the page
                            update_section(doc, f"bench-model-{name}-{schedule}", body, DOC_HEADER)
                            replace_section_if_present(args.readme, "bench", readme_summary(doc))

                cells, floor, model = quality_cells(name, schedule, budgets, seeds, n, min(ref_n, n), args.variants,
                                                    not args.no_comfy, ref_steps=args.ref_steps, on_partial=write)
                write(cells, floor, model, budgets)
    overhead_md = None
    if not args.skip_overhead:
        rows = overhead()
        overhead_md = (f"Command: `python -m seeds_samplers bench --skip-quality{' --readme README.md' if args.readme else ''}`"
                       " (1×4×128×128 latent, a one-multiply model, 30 steps; minimum over interleaved rounds).\n\n"
                       + overhead_markdown(rows))
        (args.out / "overhead.md").write_text(overhead_md + "\n")
        print("\n" + overhead_md)
        if args.readme:
            update_section(args.readme.parent / DOC, "bench-overhead", "## Sampler overhead\n\n" + overhead_md,
                           DOC_HEADER)
            replace_section_if_present(args.readme, "overhead", overhead_md)
    if args.readme:
        print(f"updated {args.readme} and {args.readme.parent / DOC}")
    return 0
