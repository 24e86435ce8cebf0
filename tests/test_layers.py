"""The package's layers hold: ``samplers/`` (the solvers) imports nothing above it,
``amed/`` (predictor training and storage, which the ComfyUI nodes use) never imports the
benchmark or the digits models, and the host glue loads neither of them.

Every import statement of every module is read with ``ast`` (also the ones inside
functions), relative (``from ..bench import x``) and absolute (``seeds_samplers.bench``)
alike; the glue is also imported in a fresh interpreter and ``sys.modules`` checked.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "seeds_samplers"

# layer -> the top-level packages it must never import
FORBIDDEN: Dict[str, Set[str]] = {
    "samplers": {"amed", "bench", "digits", "nodes", "webui"},
    "amed": {"bench", "digits"},
}
LAYERS = ("samplers", "amed", "bench", "digits", "nodes", "webui")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE] + parts)


def imported_modules(path: Path, source: Optional[str] = None) -> Iterator[Tuple[int, str]]:
    """``(line, absolute module name)`` of every import in the file (or in ``source``, read
    as that file); for ``from X import y`` both ``X`` and ``X.y`` (``y`` may be a submodule)."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{module}.{alias.name}"


def layer_of(module: str) -> str:
    """The package layer of an absolute module name ('' outside the package's layers)."""
    parts = module.split(".")
    if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return ""


def violations(layer: str) -> List[str]:
    out = []
    for path in sorted((REPO / layer).rglob("*.py")):
        for line, module in imported_modules(path):
            target = layer_of(module)
            if target in FORBIDDEN[layer]:
                out.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return sorted(set(out))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer):
    found = violations(layer)
    assert not found, f"{layer}/ must not import {sorted(FORBIDDEN[layer])}:\n" + "\n".join(found)


def test_the_import_reader_sees_every_form():
    """The checker itself: relative, absolute and function-level imports all count."""
    source = ("import seeds_samplers.webui\n"
              "from ..bench import gmm\n"
              "from .. import digits\n"
              "def f():\n"
              "    from ..amed.storage import load_predictor\n"
              "    from .run import SamplerRun\n")
    seen = {layer_of(m) for _, m in imported_modules(REPO / "samplers" / "probe.py", source)}
    assert seen == {"", "webui", "bench", "digits", "amed", "samplers"}
    inside = {layer_of(m) for _, m in imported_modules(REPO / "nodes" / "__init__.py", "from ..amed import train\n")}
    assert "amed" in inside


GLUE = [
    # what ComfyUI loads: the node package, every node module, the node classes (the AMED
    # nodes' training and storage run in-process too)
    "seeds_samplers.nodes", "seeds_samplers.nodes.definitions", "seeds_samplers.nodes.registration",
    "seeds_samplers.nodes.amed", "seeds_samplers.amed.train", "seeds_samplers.amed.storage",
    "seeds_samplers.amed.convert",
    # what the webui extension loads
    "seeds_samplers.webui", "seeds_samplers.webui.registration", "seeds_samplers.webui.sampler",
    "seeds_samplers.webui.script", "seeds_samplers.webui.naming",
]


def _loaded_after(modules: List[str], call: str = "") -> List[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            f"{call}\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_host_glue_loads_no_benchmark_or_digits_module():
    loaded = _loaded_after(GLUE, "import seeds_samplers.nodes as n; n.node_definitions()")
    assert "seeds_samplers.nodes.amed" in loaded and "seeds_samplers.webui.sampler" in loaded
    bad = [m for m in loaded if layer_of(m) in ("bench", "digits")]
    assert not bad, bad


def test_the_solvers_load_no_other_layer():
    loaded = _loaded_after(["seeds_samplers.samplers"] + [
        f"seeds_samplers.samplers.{p.stem}" for p in sorted((REPO / "samplers").glob("*.py")) if p.stem != "__init__"])
    bad = [m for m in loaded if layer_of(m) not in ("", "samplers")]
    assert not bad, bad


def _mentions_step_modes(source: str) -> List[str]:
    """Names in ``source`` through which a module would branch on step modes: the StepMode
    enum, or a run's ``mode`` list."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "StepMode":
            found.append("StepMode")
        elif isinstance(node, ast.Attribute) and node.attr in ("StepMode", "mode"):
            found.append(node.attr)
        elif isinstance(node, ast.alias) and node.name == "StepMode":
            found.append("import StepMode")
    return found


def test_only_the_step_loop_branches_on_step_modes():
    """samplers/run.py decides how each step is taken; a solver module gives coefficients
    and its update formula only (it reads run.solver_steps, never the modes)."""
    samplers = REPO / "samplers"
    offenders = {p.name: _mentions_step_modes(p.read_text()) for p in sorted(samplers.glob("*.py"))
                 if p.name != "run.py"}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert _mentions_step_modes((samplers / "run.py").read_text())  # the check sees them where they are
