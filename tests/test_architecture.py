"""The layers of docs/architecture.md hold: no paper recipe imports another, no model imports the training loop, no
import cycle (lazy imports and the package __init__ an import runs included)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "usnb"
PAPER_RECIPES = ("usnb.recipes.kganet", "usnb.recipes.clman", "usnb.recipes.mvcc", "usnb.recipes.lung_ssl")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def imports_of(module: str) -> set[str]:
    """usnb modules that `module` imports anywhere in its file (top level or inside functions), with the packages
    whose __init__ such an import runs."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from ..train import x` in usnb/recipes/kganet.py is usnb.train
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    out = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:k]) for k in range(2, len(parts) + 1))
    return {m for m in out if m in MODULES and m != module and not module.startswith(m + ".")}


def test_import_helper_sees_lazy_and_relative_imports():
    assert "usnb.train" in imports_of("usnb.recipes.kganet")  # `from ..train import ...`
    assert "usnb.explain" in imports_of("usnb.recipes.mvcc")  # inside a function
    assert "usnb.datasets" in imports_of("usnb.phantom")  # `from ..datasets.manifest import` runs datasets/__init__


@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_no_paper_recipe_imports_another(recipe):
    assert not imports_of(recipe) & (set(PAPER_RECIPES) - {recipe})


def test_no_model_imports_the_training_loop():
    models = [m for m in MODULES if m.startswith("usnb.models")]
    assert models and all("usnb.train" not in imports_of(m) for m in models)


def test_no_import_cycle():
    graph = {m: imports_of(m) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
