"""The documentation: README stays a front page, every page the site names exists, every link and figure
resolves, no figure is orphaned, and (where the `docs` extra is installed) `mkdocs build --strict` passes."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 250
# pages docs/_hooks/api_pages.py makes at build time: the home page (from README.md) and the API reference
GENERATED_HOME = "index.md"
REFERENCE = "reference/"


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    items = nav.values() if isinstance(nav, dict) else nav
    return [page for item in items for page in _nav_pages(item)]


def _mkdocs_nav() -> list[str]:
    return _nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])


def _pages() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)]


def _unfenced(text: str) -> str:
    """Markdown without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _links(path: Path) -> list[str]:
    prose = re.sub(r"`[^`\n]*`", "", _unfenced(path.read_text()))  # brackets in code are not links
    return re.findall(r"\]\(([^)\s]+)\)", prose)


def _module_exists(module: str) -> bool:
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to a docs/ page"
    text = README.read_text()
    for words in ("issue 1", "issue 2", "this 2-core", "../shared"):
        assert words not in text, f"README.md says {words!r}, which means nothing to a reader"


def test_every_nav_page_exists():
    nav = _mkdocs_nav()
    assert GENERATED_HOME in nav and "ARCHITECTURE.md" in nav
    assert not (DOCS / GENERATED_HOME).exists(), "docs/index.md would shadow the home page made from README.md"
    for page in nav:
        if page == GENERATED_HOME:
            continue
        if page.startswith(REFERENCE):
            module = page[len(REFERENCE):-len(".md")]
            assert _module_exists(module), (
                f"mkdocs.yml documents {module}, which has no source file: update the nav's API reference"
            )
        else:
            assert (DOCS / page).is_file(), f"mkdocs.yml names docs/{page}, which does not exist"


def test_every_docs_page_is_in_the_nav():
    nav = set(_mkdocs_nav())
    for path in _pages()[1:]:
        page = path.relative_to(DOCS).as_posix()
        assert page in nav, f"docs/{page} is not in mkdocs.yml's nav, so the site hides it"


@pytest.mark.parametrize("path", _pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_and_figures_resolve(path):
    headings = {_github_slug(h) for h in re.findall(r"^#+ (.+)$", _unfenced(path.read_text()), flags=re.M)}
    nav = set(_mkdocs_nav())
    for link in _links(path):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not checked offline
        target, _, anchor = link.partition("#")
        if not target:
            assert anchor in headings, f"{path.name}: link #{anchor} names no heading of the page"
            continue
        resolved = (path.parent / target).resolve()
        page = resolved.relative_to(DOCS).as_posix() if resolved.is_relative_to(DOCS) else None
        if page is not None and page.startswith(REFERENCE):
            assert page in nav, f"{path.relative_to(REPO)} links to {link}, an API page the nav does not make"
            continue
        if path != README and page == GENERATED_HOME:
            resolved = README  # the home page is README.md
        assert resolved.exists(), f"{path.relative_to(REPO)} links to {link}, which does not exist"
        if path == README:
            assert resolved.is_relative_to(DOCS), f"README.md links outside docs/ ({link}): the site cannot follow it"


@pytest.mark.parametrize("path", _pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_commands_and_files_named_exist(path):
    from w2s_hf.cli import COMMANDS

    text = path.read_text()
    code = re.findall(r"^```.*?^```", text, flags=re.S | re.M) + re.findall(r"`[^`\n]+`", _unfenced(text))
    for command in re.findall(r"(?:^|[`\s;&|(])w2s ([a-z][\w-]*)", "\n".join(code), flags=re.M):
        assert command in COMMANDS, f"{path.relative_to(REPO)} runs `w2s {command}`, which is no w2s command"
    for name in re.findall(r"((?:scripts|accelerate_configs)/[\w/.${},*-]+?\.(?:py|yaml))", text):
        # shell forms too: `$k` / `${t}` match any name, `{a,b}` expands (a loop over configs names each one)
        pattern = re.sub(r"\$\{?\w+\}?", "*", name)
        for expanded in _braces(pattern):
            assert list(REPO.glob(expanded)), f"{path.relative_to(REPO)} names {name}, which does not exist"


def _braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [x for part in match.group(1).split(",")
            for x in _braces(pattern[:match.start()] + part + pattern[match.end():])]


def test_every_figure_is_shown_somewhere():
    shown = {(path.parent / link).resolve() for path in _pages() for link in _links(path)}
    for figure in sorted((DOCS / "figures").iterdir()):
        assert figure.resolve() in shown, f"docs/figures/{figure.name} is on no page"


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    home = (tmp_path / "index.html").read_text()
    assert "Quick start" in home and 'href="results/"' in home, "the home page is README.md, links made relative"
    heads = (tmp_path / "reference" / "w2s_hf.heads" / "index.html").read_text()
    assert 'id="w2s_hf.heads.fit.fit_exact"' in heads, "the API reference is rendered from the docstrings"
