"""MkDocs hook: pages made at build time, so that nothing is written twice.

The home page is README.md, its links to `docs/...` made relative to the site (`docs/results.md` ->
`results.md`): the README is the front page on GitHub and on the site alike.

The API reference pages are generated from the nav, the one list of documented modules.

A nav entry `reference/<module>.md` (e.g. `reference/w2s_hf.heads.md`) that has no file in docs/
becomes a page rendered by mkdocstrings from the docstrings: a module whole, a package as its docstring
then each of its modules in turn. To document another module, add its line to the nav in mkdocs.yml;
nothing else. `reference/w2s_hf.md`
lists the names `import w2s_hf` exports (read from `w2s_hf._EXPORTS`, so it follows the package).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PREFIX = "reference/"


def reference_pages(nav: Any) -> list[str]:
    """Every `reference/<module>.md` path named anywhere in a (nested) mkdocs nav."""
    if isinstance(nav, str):
        return [nav] if nav.startswith(PREFIX) and nav.endswith(".md") else []
    items = nav.values() if isinstance(nav, dict) else nav if isinstance(nav, list) else []
    return [page for item in items for page in reference_pages(item)]


def module_of(page: str) -> str:
    """`reference/w2s_hf.heads.md` -> `w2s_hf.heads`."""
    return page[len(PREFIX):-len(".md")]


def _defined_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement defines: a def, a class or an (annotated) assignment."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.AnnAssign):
        return [node.target.id] if isinstance(node.target, ast.Name) else []
    targets = node.targets if isinstance(node, ast.Assign) else []
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _defines(path: Path, name: str) -> bool:
    return any(name in _defined_names(node) for node in ast.parse(path.read_text()).body)


def lazy_exports(root: Path) -> dict[str, str]:
    """`w2s_hf._EXPORTS` (public name -> module), read without importing the package."""
    for node in ast.parse((root / "w2s_hf" / "__init__.py").read_text()).body:
        if "_EXPORTS" in _defined_names(node):
            return ast.literal_eval(node.value)
    raise ValueError(f"{root / 'w2s_hf' / '__init__.py'} has no _EXPORTS dict")


def defining_module(name: str, module: str, root: Path) -> str:
    """The module under `module` whose source defines `name`. Packages re-export lazily (a module-level
    `__getattr__`), which griffe, reading code statically, cannot follow; the definition it can."""
    base = root.joinpath(*module.split("."))
    files = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else sorted(base.rglob("*.py"))
    found = [f for f in files if _defines(f, name)]
    if len(found) != 1:
        raise ValueError(f"{module}.{name} is defined in {len(found)} files under {base}: {found}")
    parts = found[0].relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def submodules(module: str, root: Path) -> list[str]:
    """The public modules and packages directly inside a package ([] for a plain module)."""
    folder = root.joinpath(*module.split("."))
    if not (folder / "__init__.py").exists():
        return []
    names = [p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")]
    names += [p.name for p in folder.iterdir() if (p / "__init__.py").exists() and not p.name.startswith("_")]
    return [f"{module}.{name}" for name in sorted(names)]


def module_blocks(module: str, root: Path, level: int) -> list[str]:
    """mkdocstrings blocks for a module, or for a package: its docstring, then each of its modules, once,
    where the objects are defined (documenting a package's re-exports would show every object twice)."""
    inner = submodules(module, root)
    heading = f"      show_root_heading: true\n      heading_level: {level}\n" if level > 1 else ""
    if not inner:
        return [f"::: {module}\n    options:\n{heading}      show_submodules: false\n"]
    blocks = [f"::: {module}\n    options:\n{heading}      members: false\n"]
    return blocks + [block for sub in inner for block in module_blocks(sub, root, min(level + 1, 4))]


def page_source(module: str, root: Path) -> str:
    """Markdown of one reference page; `w2s_hf` itself lists what `import w2s_hf` exports."""
    if module != "w2s_hf":
        return "\n".join([f"# `{module}`\n", *module_blocks(module, root, level=1)])
    lines = ["# `w2s_hf`: the public API\n", "::: w2s_hf\n    options:\n      members: false\n"]
    lines += [f"::: {defining_module(name, where, root)}.{name}\n    options:\n      heading_level: 2\n"
              for name, where in lazy_exports(root).items()]
    return "\n".join(lines)


def home_page(root: Path) -> str:
    """README.md with its links into docs/ rewritten relative to docs/ (links and images alike)."""
    return re.sub(r"\]\(docs/", "](", (root / "README.md").read_text())


def on_files(files: Files, config: Any) -> Files:
    root = Path(config["config_file_path"]).parent
    if files.get_file_from_path("index.md") is None:
        files.append(File.generated(config, "index.md", content=home_page(root)))
    for page in reference_pages(config["nav"]):
        if files.get_file_from_path(page) is None:
            files.append(File.generated(config, page, content=page_source(module_of(page), root)))
    return files
