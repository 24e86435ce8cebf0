"""Helpers for the tests, not tests themselves (pytest collects only ``test_*.py``).

The tests import them as ``support.<module>`` (pyproject.toml puts tests/ on the path);
the modules import each other relatively, so the scripts among them also run from the
repository root as ``python -m tests.support.<module>``.

What every helper needs lives here: where the repository is, where built test assets are
cached (outside the repository), and a free local port for a server under test.
"""

from __future__ import annotations

import os
import socket

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def asset_cache(*parts: str) -> str:
    """``$SS_TEST_CACHE`` (default ``~/.cache/seeds_samplers_tests``) joined with ``parts``,
    created: random checkpoints take minutes to build, so they outlive a test run."""
    root = os.environ.get("SS_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "seeds_samplers_tests")
    path = os.path.join(root, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
