"""MkDocs hook: pages made at build time, so that nothing is written twice.

The home page is README.md, its links to `docs/...` made relative to the site (`docs/results.md` ->
`results.md`): the README is the front page on GitHub and on the site alike.

The API reference pages are generated from the nav, the one list of documented modules.

A nav entry `reference/<module>.md` (e.g. `reference/w2s_hf.heads.md`) that has no file in docs/
becomes a page holding `::: <module>`, rendered by mkdocstrings from the module's docstrings. To
document another module, add its line to the nav in mkdocs.yml; nothing else. `reference/w2s_hf.md`
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


def lazy_exports(package_dir: Path) -> dict[str, str]:
    """A package's `_EXPORTS` (public name -> module), read without importing it; {} if it has none."""
    init = package_dir / "__init__.py"
    if not init.exists():
        return {}
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    return {}


def defining_module(name: str, module: str, root: Path) -> str:
    """Follow lazy re-exports (`w2s_hf.features` -> `w2s_hf.features.encoder`): griffe reads code statically
    and cannot see a name that a module-level `__getattr__` returns."""
    target = lazy_exports(root.joinpath(*module.split("."))).get(name)
    return module if target is None or target == module else defining_module(name, target, root)


def submodules(module: str, root: Path) -> list[str]:
    """The public modules and packages directly inside a package ([] for a plain module)."""
    folder = root.joinpath(*module.split("."))
    if not (folder / "__init__.py").exists():
        return []
    names = [p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")]
    names += [p.name for p in folder.iterdir() if (p / "__init__.py").exists() and not p.name.startswith("_")]
    return [f"{module}.{name}" for name in sorted(names)]


def page_source(module: str, root: Path) -> str:
    """Markdown of one reference page: a package's docstring, then each of its modules once, where the
    objects are defined (a package's re-exports would otherwise document every object twice)."""
    if module != "w2s_hf":
        inner = submodules(module, root)
        if not inner:
            return f"# `{module}`\n\n::: {module}\n"
        lines = [f"# `{module}`\n", f"::: {module}\n    options:\n      members: false\n"]
        lines += [f"::: {sub}\n    options:\n      show_root_heading: true\n      show_submodules: true\n"
                  for sub in inner]
        return "\n".join(lines)
    lines = ["# `w2s_hf`: the public API\n", "::: w2s_hf\n    options:\n      members: false\n"]
    lines += [f"::: {defining_module(name, where, root)}.{name}\n    options:\n      heading_level: 2\n"
              for name, where in lazy_exports(root / "w2s_hf").items()]
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
