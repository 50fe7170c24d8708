"""Tokenizers: fitted on training documents, saved with each run, loadable without the corpus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np


class Tokenizer(Protocol):
    kind: ClassVar[str]
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...
    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


class CharTokenizer:
    """One id per character seen in training; id 0 stands for any character it has not seen."""

    kind: ClassVar[str] = "char"
    UNK = "\ufffd"

    def __init__(self, chars: Sequence[str]) -> None:
        self.itos = [self.UNK, *(c for c in chars if c != self.UNK)]
        self.vocab_size = len(self.itos)
        codepoints = np.array([ord(c) for c in self.itos[1:]], dtype=np.int64)
        # A codepoint -> id table makes encoding one vectorised lookup instead of a Python loop.
        self._table = np.zeros(int(codepoints.max(initial=0)) + 1, dtype=np.int64)
        self._table[codepoints] = np.arange(1, self.vocab_size)

    @classmethod
    def fit(cls, documents: Sequence[str]) -> CharTokenizer:
        return cls(sorted(set().union(*map(set, documents))))

    def encode(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.zeros(cps.shape, dtype=np.int64)
        known = cps < len(self._table)
        ids[known] = self._table[cps[known]]
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.itos[1:]}


_KINDS: dict[str, Any] = {"char": lambda d: CharTokenizer(d["chars"])}


def save_tokenizer(tok: Tokenizer, path: Path) -> None:
    path.write_text(json.dumps(tok.to_dict(), ensure_ascii=False), encoding="utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return _KINDS[data["kind"]](data)
