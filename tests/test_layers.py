"""The house rules, read from the code: layers import downward only, no cycle, no private name shared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "w2s_hf"
# lower number = lower layer; a module may import its own layer or a lower one, never a higher one
LAYERS = {
    "errors": 0, "atomic": 0, "arrays": 0, "distributed": 0, "progress": 0, "lazy": 0, "threads": 0,
    # the divergences (numpy, for the decomposition) and the training losses (torch, for heads): one table
    # below both
    "divergences": 1,
    "data": 2, "features": 3, "heads": 4, "decomposition": 5, "hooks": 6, "pipeline": 7,
    "config": 8,  # the config imports the domain's lists of allowed values; the domain never imports it
    "experiments": 9, "pretraining": 9, "commands": 10, "cli": 11, "compat": 11, "__init__": 11, "__main__": 11,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, imported names, at module level?) for every w2s_hf import of a file."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [a.name for a in node.names]
            if not node.module:  # `from . import x`: the module x itself
                for name in names:
                    yield f"{module}.{name}", [], id(node) in top_level
                continue
        elif isinstance(node, ast.Import):
            module, names = node.names[0].name, []
        else:
            continue
        if module.startswith("w2s_hf"):
            yield module, names, id(node) in top_level



def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


FILES = sorted(p for p in PACKAGE.rglob("*.py") if "hooks/metrics" not in p.as_posix())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_go_down_the_layers(path):
    here = _layer(_module_name(path))
    for module, _, _ in _imports(path):
        there = _layer(module)
        assert there <= here, f"{path.relative_to(PACKAGE)} (layer {here}) imports {module} (layer {there})"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_private_name_crosses_modules(path):
    for module, names, _ in _imports(path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.relative_to(PACKAGE)} imports private {private} from {module}"


def test_no_import_cycle_between_modules():
    # function-level imports count too: a cycle deferred into a function is still a cycle of the design
    graph = {}
    for path in FILES:
        graph[_module_name(path)] = {m for m, _, _ in _imports(path)}
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if node in seen or node not in graph:
            return
        stack.append(node)
        for nxt in graph[node]:
            # importing a package runs its __init__: follow the package too
            visit(nxt if nxt in graph else nxt.rpartition(".")[0])
        stack.pop()
        seen.add(node)

    for node in graph:
        visit(node)


def test_old_import_paths_still_work():
    import importlib
    import warnings

    from w2s_hf.compat import ALIASES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for old, new in ALIASES.items():
            assert importlib.import_module(old) is importlib.import_module(new), old
    from w2s_hf.misfit import decompose  # noqa: F401  (the most used old path, as users wrote it)


def test_an_old_module_is_an_attribute_after_a_plain_import():
    """`evaluate.load(w2s_hf.evaluation.metric_path())`, as the docs once wrote it, in a fresh interpreter."""
    import subprocess
    import sys

    code = "import w2s_hf, os; print(os.path.isdir(w2s_hf.evaluation.metric_path()), w2s_hf.metric_path())"
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "True" and out.stdout.split()[1].endswith("misfit_decomposition")


def test_registries_meet():
    from w2s_hf.data.kinds import TASK_KINDS
    from w2s_hf.decomposition import DIVERGENCES
    from w2s_hf.heads.losses import LOSSES
    from w2s_hf.heads.registry import FITTERS, SOLVERS

    for loss in LOSSES.values():
        assert loss.divergence in DIVERGENCES and loss.task_type in TASK_KINDS, loss.name
    for kind in TASK_KINDS.values():
        assert kind.divergence in DIVERGENCES and LOSSES[kind.gold_loss].task_type == kind.name
        for solver in SOLVERS:  # every kind has its linear heads; LoRA students are per kind (not preference yet)
            assert (kind.name, solver) in FITTERS, (kind.name, solver)


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
