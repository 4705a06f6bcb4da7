"""The package's import graph keeps its layers (docs/architecture.md): read every module's imports (also those
inside functions) and fail on any that runs back up."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "src" / "scrnet"

# layer of each top-level module or sub-package, lowest first; a module may import its own layer and those below
LAYERS = {
    "_version": 0, "errors": 0, "overrides": 0, "runtime": 0, "distributed": 0, "checkpoint_io": 0, "outputs": 0,
    "drawing": 0, "provenance": 0,
    "models": 1, "data": 1,
    "config": 2,
    "loading": 3, "pretrained": 3,
    "evaluation": 4,
    "engine": 5,
    "inference": 6, "deploy": 6, "profiling": 6,
    "hub": 7, "experiments": 7,
    "cli": 8, "__main__": 8, "__init__": 8,
}
# within layer 1, models and data are independent of each other; within layer 6, deployment and prediction do not
# use each other (profiling times exported graphs, so it may use deploy); within layer 7, sharing and experiments
FORBIDDEN_SIDEWAYS = {("models", "data"), ("data", "models"), ("inference", "deploy"), ("deploy", "inference"),
                      ("inference", "profiling"), ("deploy", "profiling"), ("hub", "experiments"),
                      ("experiments", "hub")}


def unit_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def scrnet_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level scrnet unit) for every import of scrnet code in ``path``, relative or absolute."""
    tree = ast.parse(path.read_text(), str(path))
    package_parts = list(path.relative_to(PACKAGE.parent).parent.parts)  # e.g. ["scrnet", "engine"]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "scrnet" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[:len(package_parts) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = node.module.split(".")
            if target[0] != "scrnet":
                continue
            if len(target) > 1:
                found.append((node.lineno, target[1]))
            else:  # from scrnet import x / from . import x (at the top): each name is a unit
                found += [(node.lineno, alias.name) for alias in node.names]
    return found


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        assert unit in LAYERS, f"{path}: new top-level module {unit!r}; give it a layer here and in the docs"
        for line, target in scrnet_imports(path):
            if target == unit:
                continue
            if target not in LAYERS:
                continue  # a name imported from the package root, e.g. __version__
            if LAYERS[target] > LAYERS[unit] or (unit, target) in FORBIDDEN_SIDEWAYS:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {unit} (layer {LAYERS[unit]}) imports "
                           f"{target} (layer {LAYERS[target]})")
    return bad


def test_no_import_runs_back_up_the_layers():
    assert violations() == []


def test_evaluation_does_not_import_the_trainer():
    for path in (PACKAGE / "evaluation").rglob("*.py"):
        assert "engine" not in {t for _, t in scrnet_imports(path)}, path


def test_the_check_sees_relative_imports_inside_functions(tmp_path, monkeypatch):
    """The scanner itself: a function-local relative import of a higher layer is caught."""
    fake = tmp_path / "scrnet"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "bad.py").write_text("def f():\n    from ..engine.trainer import train\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert scrnet_imports(fake / "models" / "bad.py") == [(2, "engine")]
    with pytest.raises(AssertionError):
        assert violations() == []


def module_imports(path: Path, package: Path) -> set[str]:
    """The scrnet modules ``path`` imports (also inside functions), as paths relative to the package root without
    ``.py`` (``experiments/compare``); a name imported from a package that is a module counts as that module."""
    tree = ast.parse(path.read_text(), str(path))
    here = list(path.relative_to(package).parent.parts)
    found = set()

    def add(parts: list[str], names: list[str]) -> None:
        for candidate in ([*parts, n] for n in names):
            if (package.joinpath(*candidate).with_suffix(".py")).exists():
                found.add("/".join(candidate))
        if parts and package.joinpath(*parts).with_suffix(".py").exists():
            found.add("/".join(parts))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "scrnet":
                parts = node.module.split(".")[1:]
            else:
                continue
            add(parts, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "scrnet":
                    add(alias.name.split(".")[1:], [])
    found.discard(str(path.relative_to(package).with_suffix("")))
    return found


def import_cycles(package: Path) -> list[list[str]]:
    """Every cycle of the module import graph (each reported once, from its smallest member)."""
    graph = {str(p.relative_to(package).with_suffix("")): module_imports(p, package) for p in package.rglob("*.py")}
    cycles = []

    def visit(start: str, node: str, trail: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                cycles.append(trail + [start])
            elif nxt > start and nxt not in trail:
                visit(start, nxt, trail + [nxt])

    for start in sorted(graph):
        visit(start, start, [start])
    return cycles


def test_no_module_imports_itself_through_others():
    """Within a package too (e.g. compare and forest importing each other, one hidden in a function)."""
    assert import_cycles(PACKAGE) == []


def test_the_cycle_check_sees_a_cycle_hidden_in_a_function(tmp_path):
    fake = tmp_path / "scrnet"
    (fake / "experiments").mkdir(parents=True)
    (fake / "experiments" / "a.py").write_text("from .b import x\n")
    (fake / "experiments" / "b.py").write_text("def f():\n    from .a import y\n")
    (fake / "experiments" / "c.py").write_text("from scrnet.experiments import a\n")
    assert import_cycles(fake) == [["experiments/a", "experiments/b", "experiments/a"]]
