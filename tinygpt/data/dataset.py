"""From documents to token streams: the hashed split, nested subsets and the memmap token cache.

Splits are decided per document by a hash of its text, so adding documents never moves existing
ones between splits. Training subsets are prefixes of a seeded hash order, so for one seed a
smaller ``data.fraction`` is a subset of a larger one. Tokens are written once per corpus content
and tokenizer to ``<cache_dir>/<key>/`` and memory-mapped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tinygpt.data.tokenizers import Tokenizer, load_tokenizer, save_tokenizer
from tinygpt.errors import TinyGPTError, instantiate

SPLITS = ("train", "val", "test")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_of(doc_hash: str) -> str:
    """90/5/5 by the document's own hash: stable whatever else is in the corpus."""
    bucket = int(doc_hash[:8], 16) % 100
    return "train" if bucket < 90 else "val" if bucket < 95 else "test"


def split_documents(docs: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for d in docs:
        out[split_of(_sha(d))].append(d)
    return out


def select_training(
    docs: Sequence[str], fraction: float, max_samples: int | None, seed: int
) -> list[str]:
    """A seeded prefix of the training documents: nested across fractions for one seed."""
    if not 0.0 < fraction <= 1.0:
        raise TinyGPTError(f"data.fraction={fraction} must be in (0, 1]")
    if max_samples is not None and max_samples < 1:
        raise TinyGPTError(f"data.max_samples={max_samples} must be at least 1 (or null)")
    order = sorted(docs, key=lambda d: _sha(f"{seed}:{_sha(d)}"))
    keep = max(1, math.ceil(fraction * len(order)))
    if max_samples is not None:
        keep = min(keep, max_samples)
    return order[:keep]


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    # Parallel jobs may fill the same cache entry: each writes its own temp file, the rename wins.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_tokens(path: Path, tok: Tokenizer, docs: Sequence[str]) -> None:
    ids = tok.encode_documents(docs).astype(token_dtype(tok.vocab_size))
    _atomic_write(path, lambda p: ids.tofile(p))


@dataclass
class TokenData:
    tokenizer: Tokenizer
    tokenizer_path: Path
    splits: dict[str, np.ndarray]  # memmaps
    corpus_sha256: str
    documents: dict[str, int]  # documents per split (train: the selected subset)
    cache_dir: Path
    cache_hit: bool

    def describe(self) -> dict[str, Any]:
        return {
            "corpus_sha256": self.corpus_sha256,
            "vocab_size": self.tokenizer.vocab_size,
            **{f"{s}_tokens": len(a) for s, a in self.splits.items()},
            **{f"{s}_documents": n for s, n in self.documents.items()},
        }


def prepare(data_cfg: DictConfig, context: int) -> TokenData:
    """Load the corpus, split it, fit or reuse the tokenizer, and memory-map each split."""
    loaded = instantiate(data_cfg.corpus)
    # A corpus is a list of documents, or already split (a dataset with its own held-out split).
    presplit = isinstance(loaded, dict)
    docs = [d for s in SPLITS for d in loaded.get(s, [])] if presplit else loaded
    if not docs:
        raise TinyGPTError("the corpus is empty: check data.corpus / data.path")
    corpus_sha = hashlib.sha256()
    for d in docs:
        corpus_sha.update(_sha(d).encode())
    corpus_sha256 = corpus_sha.hexdigest()

    tok_spec = json.dumps(OmegaConf.to_container(data_cfg.tokenizer, resolve=True), sort_keys=True)
    root = Path(data_cfg.cache_dir).expanduser() / _sha(corpus_sha256 + tok_spec)[:24]
    root.mkdir(parents=True, exist_ok=True)
    # The whole training split needs no seeded order: one cache file serves every seed.
    whole = data_cfg.fraction == 1.0 and data_cfg.max_samples is None
    subset_seed = 0 if whole else data_cfg.subset_seed
    subset = f"{subset_seed}-{data_cfg.fraction}-{data_cfg.max_samples}"
    files = {
        "train": root / f"train-{_sha(subset)[:16]}.bin",
        "val": root / "val.bin",
        "test": root / "test.bin",
    }
    tok_path = root / "tokenizer.json"
    hit = tok_path.exists() and all(f.exists() for f in files.values())

    split = {s: list(loaded.get(s, [])) for s in SPLITS} if presplit else split_documents(docs)
    train = select_training(split["train"], data_cfg.fraction, data_cfg.max_samples, subset_seed)
    for s in SPLITS:
        if not split[s]:
            raise TinyGPTError(
                f"the corpus has too few documents for a {s} split ({len(docs)} in all); "
                "add text or use data.corpus.unit=paragraph"
            )
    if not hit:
        if tok_path.exists():
            tok = load_tokenizer(tok_path)
        else:
            # Fitted on the whole training split, not the subset: fractions share a vocabulary.
            tok = instantiate(data_cfg.tokenizer)(split["train"])
            _atomic_write(tok_path, lambda p: save_tokenizer(tok, p))
        for s, docs_s in (("train", train), ("val", split["val"]), ("test", split["test"])):
            if not files[s].exists():
                _write_tokens(files[s], tok, docs_s)
    tok = load_tokenizer(tok_path)
    dtype = token_dtype(tok.vocab_size)
    arrays = {s: np.memmap(f, dtype=dtype, mode="r") for s, f in files.items()}
    for s, a in arrays.items():
        if len(a) <= context:
            raise TinyGPTError(
                f"the {s} split has {len(a)} tokens, fewer than one context window of "
                f"{context + 1}: lower model.context or use more data (data.fraction, data.path)"
            )
    counts = {"train": len(train), "val": len(split["val"]), "test": len(split["test"])}
    return TokenData(tok, tok_path, arrays, corpus_sha256, counts, root, hit)


# The windows every evaluation reads (validation, test, seal's forgetting check): the same for
# every run and every evaluation, so losses compare across runs.
EVAL_SEED = 1234


class BatchSampler:
    """Random context windows from a token stream, with a checkpointable RNG."""

    def __init__(self, tokens: np.ndarray, batch_size: int, context: int, seed: int) -> None:
        self.tokens, self.batch_size, self.context = tokens, batch_size, context
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self._offsets = np.arange(context + 1)

    def windows(self, n: int) -> np.ndarray:
        starts = self.rng.integers(0, len(self.tokens) - self.context, size=n)
        return np.asarray(self.tokens[starts[:, None] + self._offsets], dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


RING = 4  # pinned buffers: how far the host may run ahead of the GPU


class DeviceBatches:
    """Batches from a sampler on the training device.

    On CUDA the windows go through a ring of pinned host buffers and are copied with
    ``non_blocking=True``, so the copy of one batch overlaps the previous steps' compute; an event
    per buffer keeps the host from overwriting a buffer whose copy has not run yet.
    """

    def __init__(
        self, sampler: BatchSampler, device: Any, rank: int = 0, world_size: int = 1
    ) -> None:
        import torch

        self.sampler, self.device = sampler, device
        # Every rank draws the batch one process would draw and keeps its own contiguous share,
        # so the ranks' windows are disjoint, together the single run's, and a run resumes at
        # any world size (the sampler's state is the same on every rank).
        share = sampler.batch_size // world_size
        self.part = slice(rank * share, (rank + 1) * share)
        self.cuda = device.type == "cuda"
        if self.cuda:
            shape = (share, sampler.context + 1)
            self._host = [torch.empty(shape, dtype=torch.int64).pin_memory() for _ in range(RING)]
            self._done = [torch.cuda.Event() for _ in range(RING)]
            self._i = 0

    def next(self) -> Any:
        import torch

        windows = self.sampler.windows(self.sampler.batch_size)[self.part]
        if not self.cuda:
            return torch.from_numpy(windows)
        i, self._i = self._i, (self._i + 1) % RING
        self._done[i].synchronize()
        self._host[i].numpy()[:] = windows
        batch = self._host[i].to(self.device, non_blocking=True)
        self._done[i].record()
        return batch
