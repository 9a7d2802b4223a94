"""The layers of docs/architecture.md hold: no paper recipe imports another, no model imports the training loop, no
import cycle (lazy imports and the package __init__ an import runs included)."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "usnb"
PAPER_RECIPES = ("usnb.recipes.kganet", "usnb.recipes.clman", "usnb.recipes.mvcc", "usnb.recipes.lung_ssl",
                 "usnb.recipes.uscl", "usnb.recipes.cvrl")


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


def layers() -> list[set[str]]:
    """The modules of each layer in docs/architecture.md's table, bottom up (a package stands for its modules)."""
    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    out = []
    for row in rows:
        names = re.findall(r"`([a-z_0-9]+)/?`", row.split("|")[2])
        if names == ["notebooks"] or not names:
            continue
        out.append({f"usnb.{n}" for n in names})
    return out


def layer_of(module: str, table: list[set[str]]) -> int:
    for i, names in enumerate(table):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    for i, names in enumerate(table):  # a module named inside a package row, e.g. `timesformer` under models/
        if any(module.startswith(n.rsplit(".", 1)[0] + ".") and module.endswith("." + n.rsplit(".", 1)[1])
               for n in names):
            return i
    raise AssertionError(f"{module} is in no layer of docs/architecture.md; add it to the table")


def test_each_module_imports_only_its_own_layer_and_those_below():
    table = layers()
    assert len(table) >= 8, table
    found = {m: layer_of(m, table) for m in MODULES if m not in ("usnb", "usnb.recipes", "usnb.models")}
    upward = [f"{m} (layer {found[m]}) imports {d} (layer {found[d]})" for m in found for d in imports_of(m)
              if d in found and found[d] > found[m]]
    assert not upward, upward
