"""``python -m seeds_samplers demo``: every registered sampler on the built-in exact model
at a few NFE budgets, side by side with k-diffusion's dpmpp_2m, dpmpp_2m_sde,
dpmpp_3m_sde and euler_ancestral; prints a quality table and writes a plot and an image
grid. Then the same samplers on the trained digits model (``digits-eps``, SD's discrete
schedule with Karras spacing) at low NFE (4, 6, 10) from the same latents and noise seed:
one digit grid per budget and a Frechet-distance table beside its floor (as many real
training digits). With ``--readme README.md`` it writes docs/demo.md, the images in
docs/images and the README's demo section.

The k-diffusion baselines run when k-diffusion is installed (``pip install -e ".[kdiffusion]"``);
without it the demo prints a note and runs the pack's samplers alone. The ``demo`` extra leaves
it out because the PyPI package brings its whole training stack for four sampling functions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from ..samplers.registry import SAMPLERS
from .compare import Contender, kdiffusion, ours, quality_table, run_at_budget, schedule_for
from .gmm import AnalyticDenoiser
from .metrics import mixture_stats
from .report import image_grid, pivot_markdown, plot_metric, replace_section_if_present

BASELINES = ("dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral")
DIGITS_BUDGETS = (4, 6, 10)
KDIFFUSION_MISSING = ("k-diffusion baselines ({names}) left out: k-diffusion is not importable ({error}). "
                      "To add them: python -m pip install -e \".[kdiffusion]\"")


def kdiffusion_baselines(log=print) -> List[Contender]:
    """The :data:`BASELINES` as contenders, or none (with a printed note) when k-diffusion
    cannot be imported: the demo's own samplers need nothing from it."""
    try:
        return [kdiffusion(k) for k in BASELINES]
    except ImportError as e:  # not installed, or one of the modules its __init__ imports is missing
        log(KDIFFUSION_MISSING.format(names=", ".join(BASELINES), error=e))
        return []


def digits_demo(model_name: str, samples: int, budgets, seed: int, schedule: str, out: Path, log=print,
                baselines: Optional[Sequence[Contender]] = None) -> tuple:
    """Every registered sampler (its menu entry's settings) and the k-diffusion baselines
    (default: :func:`kdiffusion_baselines`) on a digits model: (FD markdown table, grid image
    names, floor)."""
    from .grid import noise_seed
    from .models import build_model

    model = build_model(model_name)
    x = model.prior(samples, seed)
    contenders = [ours(i) for i in SAMPLERS] + list(kdiffusion_baselines(log) if baselines is None else baselines)
    rows, grids = [], {b: [] for b in budgets}
    for b in budgets:
        for c in contenders:
            sig = schedule_for(model.denoiser, c.intervals_for(b), schedule)
            before = model.calls
            with torch.inference_mode():
                y = c(model.denoiser, x, sig, noise_seed(seed))
            rows.append(dict(label=c.label, source=c.source, nfe=b, calls=model.calls - before, fd=model.score(y),
                             stochastic=c.stochastic))
            grids[b].append((f"{c.label} ({rows[-1]['calls']})", y))
            log(f"  digits NFE {b:3d}  {c.label:28s} calls={rows[-1]['calls']:3d}  FD={rows[-1]['fd']:.3f}")
    floor = model.floor(samples, seed)
    from ..digits.data import load_digits

    real = load_digits("heldout")[0][torch.randperm(1000, generator=torch.Generator().manual_seed(seed))[:16]]
    names = []
    for b in budgets:
        name = f"demo_{model_name.replace('-', '_')}_nfe{b}.png"
        image_grid([("held-out digits", real)] + grids[b], out / name, per_row=12)
        names.append((b, name))
    table = pivot_markdown(rows, "fd", list(budgets), digits=2)
    return table, names, floor


def target_lines(rows: List[dict], budgets=(10, 20)) -> List[str]:
    """The benchmark target: our best stochastic solver vs dpmpp_2m_sde / dpmpp_3m_sde."""
    out = []
    for b in budgets:
        mine = [r for r in rows if r["nfe"] == b and r["source"] == "ours" and r["stochastic"]]
        if not mine:
            continue
        best = min(mine, key=lambda r: r["w2"])
        for base in ("dpmpp_2m_sde", "dpmpp_3m_sde"):
            ref = [r for r in rows if r["nfe"] == b and r["label"] == base]
            if ref:
                ratio = best["w2"] / ref[0]["w2"]
                verdict = "closer" if ratio < 1 else "NOT closer"
                out.append(f"NFE {b}: {best['label']} W2 {best['w2']:.4f} vs {base} {ref[0]['w2']:.4f} "
                           f"(ratio {ratio:.2f}, {verdict})")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seeds_samplers demo", description=__doc__)
    ap.add_argument("--samples", type=int, default=1024, help="samples per run (default 1024)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20, 50], help="NFE budgets")
    ap.add_argument("--kind", default="vp_discrete", choices=("vp_discrete", "edm", "flow"),
                    help="parameterisation of the exact model (default SD-like VP)")
    ap.add_argument("--schedule", default="edm_rho", help="schedule id (default edm_rho = Karras)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--digits-model", default="digits-eps", choices=("digits-eps", "digits-flow", "none"),
                    help="trained digits model for the grids and the FD table (none = skip)")
    ap.add_argument("--digits-samples", type=int, default=256, help="digits per run for the FD table (default 256)")
    ap.add_argument("--digits-budgets", type=int, nargs="+", default=list(DIGITS_BUDGETS),
                    help="NFE budgets on the digits model (default 4 6 10)")
    ap.add_argument("--digits-schedule", default="karras", help="host schedule on the digits model (default karras)")
    ap.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    ap.add_argument("--readme", type=Path, default=None,
                    help="also copy the plot and grid into docs/images and update this README's demo section")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    baselines = kdiffusion_baselines()
    if args.readme and not baselines:  # the published page shows the comparison
        ap.error("--readme needs the k-diffusion baselines: python -m pip install -e \".[kdiffusion]\"")
    model = AnalyticDenoiser(kind=args.kind)
    g = torch.Generator().manual_seed(args.seed)
    x = model.prior_sample(args.samples, model.sigma_max, g)
    exact, _ = model.mixture.sample(args.samples, g)
    floor = mixture_stats(exact, model.mixture).w2

    contenders = [ours(i) for i in SAMPLERS] + baselines
    print(f"exact model: {args.kind}, {model.mixture.k}-photo Gaussian mixture in {model.mixture.dim} dims; "
          f"{args.samples} samples; schedule {args.schedule}; exact-sample W2 (noise floor) {floor:.4f}")
    rows = quality_table(contenders, model, x, args.budgets, args.schedule, args.seed)

    table = pivot_markdown(rows, "w2", args.budgets)
    targets = target_lines(rows)
    grid_nfe = 10 if 10 in args.budgets else args.budgets[0]
    grid = [("exact", exact)] + [(c.label, run_at_budget(c, model, x, grid_nfe, args.schedule, args.seed)[0])
                                 for c in contenders]
    args.out.mkdir(parents=True, exist_ok=True)
    plot_metric(rows, "w2", args.out / "demo_w2.png",
                f"Distance to the exact distribution ({args.kind}, {args.samples} samples, {args.schedule})", floor)
    image_grid(grid, args.out / "demo_grid.png")
    command = "python -m seeds_samplers demo" + (" --readme README.md" if args.readme else "")
    md = (f"Command: `{command}` "
          f"(exact model `{args.kind}`, {args.samples} samples, schedule `{args.schedule}`, seed {args.seed}).\n\n"
          f"W2 distance to the exact mixture (lower is better; exact samples score {floor:.4f}). "
          f"A number in parentheses is the measured call count where a solver cannot spend the budget exactly.\n\n"
          f"{table}\n\n" + "\n".join(f"- {t}" for t in targets) + "\n"
          + ("" if baselines else "\nNo k-diffusion baselines in this run (k-diffusion is not installed).\n"))
    digits_md, digit_images = "", []
    if args.digits_model != "none":
        print(f"\n{args.digits_model}: {args.digits_samples} samples, schedule {args.digits_schedule}, seed {args.seed}")
        fd_table, digit_images, fd_floor = digits_demo(args.digits_model, args.digits_samples, args.digits_budgets,
                                                       args.seed, args.digits_schedule, args.out, baselines=baselines)
        digits_md = (f"Trained model `{args.digits_model}` (`seeds_samplers.digits`), {args.digits_samples} samples from "
                     f"the same latents and noise seed ({args.seed}) for every solver, schedule `{args.digits_schedule}`. "
                     f"FD: Fréchet distance of the digit classifier's penultimate features to the 1,000 held-out "
                     f"digits (lower is better); floor: {args.digits_samples} real training digits score "
                     f"{fd_floor:.2f}.\n\n{fd_table}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo.md").write_text(md + ("\n" + digits_md if digits_md else ""))
    print("\n" + md + ("\n" + digits_md if digits_md else ""))
    print(f"wrote {args.out / 'demo.md'}, {args.out / 'demo_w2.png'}, {args.out / 'demo_grid.png'}"
          + "".join(f", {args.out / n}" for _, n in digit_images))
    if args.readme:
        docs = args.readme.parent / "docs"
        images = docs / "images"
        images.mkdir(parents=True, exist_ok=True)
        for name in ["demo_w2.png", "demo_grid.png"] + [n for _, n in digit_images]:
            (images / name).write_bytes((args.out / name).read_bytes())
        grids = "".join(f"\nNFE {b} (first row: held-out digits; the number after each name is the calls spent):\n\n"
                        f"![digits at NFE {b}](images/{n})\n" for b, n in digit_images)
        page = ("# Demo\n\nWritten by `python -m seeds_samplers demo --readme README.md`; do not edit by hand.\n\n"
                "## Exact Gaussian mixture\n\n" + md
                + "\n![W2 vs NFE](images/demo_w2.png)\n\n"
                  f"Samples at NFE {grid_nfe} (first row: exact samples from the mixture):\n\n"
                  "![sample grid](images/demo_grid.png)\n"
                + (f"\n## Trained digits model\n\n{digits_md}{grids}" if digits_md else ""))
        (docs / "demo.md").write_text(page)
        body = (md + (f"\n{digits_md}" if digits_md else "")
                + (f"\n![digits at NFE {digit_images[-1][0]}](docs/images/{digit_images[-1][1]})\n" if digit_images else "")
                + "\nAll grids and the mixture plot: [docs/demo.md](docs/demo.md).\n")
        replace_section_if_present(args.readme, "demo", body)
        print(f"updated {args.readme} and {docs / 'demo.md'}")
    return 0
