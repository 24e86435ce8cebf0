"""Command line: ``python -m seeds_samplers <command> [options]``."""

import sys

COMMANDS = {  # command: (module, what it does)
    "demo": ("bench.demo", "every sampler (vs k-diffusion when installed) on an exact model and the digits models"),
    "bench": ("bench.benchmark", "the benchmark (docs/benchmark.md), sweeps of a sampler's parameters"),
    "docs": ("bench.docs", "the sampler reference from the registry (README, docs/reference.md)"),
    "sigma-steps": ("bench.sigma_steps", "what the steps in sigma change (docs/sigma_steps.md)"),
    "guidance": ("bench.guidance", "the samplers under classifier-free guidance on digits-cond (docs/guidance.md)"),
    "train-digits": ("digits.train", "train a digits model or the FD classifier"),
    "amed-train": ("bench.amed_train", "train an AMED predictor by distillation (test models) or convert one"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m seeds_samplers <command> [options]   (--help after a command for its options)\n")
        for name, (_, what) in COMMANDS.items():
            print(f"  {name:13s} {what}")
        return 2
    import importlib

    module = importlib.import_module(f"{__package__}.{COMMANDS[argv[0]][0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
