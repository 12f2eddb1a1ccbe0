"""Docs and docstrings refer only to files a clone of the repository has.

- Every relative Markdown link in README.md and docs/ resolves to a file or directory of the repository.
- Every repository path they name in backticks (`server/config.py`, `docs/hl7.md`, `wsdl/`) exists.
- No document, docstring or comment of the project names a file outside the repository: the design notes and
  research files a working copy of ours keeps in a sibling folder of the repository are not in a user's clone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"} - {"var", "build", "dist"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
TICKED = re.compile(r"`([^`\s]+)`")
PATHLIKE = re.compile(r"^\.?[\w-]+(/[\w.*{}-]+)+/?$|^[\w-]+/$")
OUTSIDE = re.compile(r"\.\./shared|\bshared/(research|contracts)|\b(DESIGN|STYLE)\.md|\bresearch/[\w-]+\.md|"
                     r"research notes|design notes|(?<![\w/])/work/|(?<![\w/])/root/")


def _tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
        return [ROOT / line for line in out.stdout.splitlines() if (ROOT / line).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the files on disk
        return sorted(p for pat in patterns for p in ROOT.glob(pat if "/" in pat else f"**/{pat}")
                      if ".venv" not in p.parts)


def _ignored(path: str) -> bool:
    try:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, timeout=30).returncode == 0
    except OSError:
        return False


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _exists(path: str) -> bool:
    if _ignored(path.split("#", 1)[0]):
        return True  # a place the project writes to (benchmarks/out/), ignored by git
    path = path.split("#", 1)[0].rstrip("/")
    if any(c in path for c in "*{"):
        return any(ROOT.glob(re.sub(r"\{[^}]*\}", "*", path)))
    return (ROOT / path).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (doc.parent / path).resolve().exists():
            broken.append(target)
        elif ROOT not in (doc.parent / path).resolve().parents and (doc.parent / path).resolve() != ROOT:
            broken.append(target + " (outside the repository)")
    assert not broken, f"{doc.relative_to(ROOT)}: links that do not resolve: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_in_backticks_exist(doc: Path) -> None:
    missing = []
    for token in TICKED.findall(doc.read_text(encoding="utf-8")):
        token = token.rstrip(".,:;)")
        if PATHLIKE.match(token) and token.split("/", 1)[0] in TOP and not _exists(token):
            missing.append(token)
    assert not missing, f"{doc.relative_to(ROOT)} names repository paths that do not exist: {sorted(set(missing))}"


def test_nothing_refers_to_files_outside_the_repository() -> None:
    files = _tracked("*.md", "*.py", "*.toml", "*.cfg", "Makefile", ".ci/*")
    me = Path(__file__).resolve()
    found = [f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
             for f in files if f.resolve() != me
             for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)
