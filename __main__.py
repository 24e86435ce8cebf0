"""Command line: ``python -m seeds_samplers demo|bench|docs``."""

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"demo": "demo", "bench": "benchmark", "docs": "docs"}
    if not argv or argv[0] not in commands:
        print("usage: python -m seeds_samplers {demo|bench|docs} [options]  (--help after a command for its options)")
        return 2
    import importlib

    module = importlib.import_module(f"{__package__}.bench.{commands[argv[0]]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
