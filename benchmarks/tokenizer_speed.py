"""Tokenizer throughput on the shipped corpus: batched encoding against a per-document loop.

For each tokenizer (char, byte, bpe, gpt2) on the King James Bible it prints tokens/s of the
batched path the token cache uses (`encode_documents`: vectorised numpy for char/byte, the Rust
`encode_batch` on all cores for BPE/GPT-2) and of encoding one document at a time in a Python
loop, measured in the same run, plus how long a warm-cache `prepare()` takes. Writes
benchmarks/results/tokenizer_speed.json.

    python benchmarks/tokenizer_speed.py
"""

import os
import sys

# Run as a script, this file's folder comes first on sys.path, where its name hides the standard
# library's `tokenize` (imported by linecache): drop the folder before importing anything else.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from tinygpt.app import config_dir  # noqa: E402
from tinygpt.data import corpora  # noqa: E402
from tinygpt.data.dataset import prepare  # noqa: E402
from tinygpt.data.tokenizers import ByteTokenizer, CharTokenizer, gpt2, train_bpe  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    docs = corpora.kjv()
    bpe, bpe_train_s = timed(lambda: train_bpe(docs, vocab_size=4096))
    tokenizers = {
        "char": CharTokenizer.fit(docs),
        "byte": ByteTokenizer(),
        "bpe": bpe,
        "gpt2": gpt2(),
    }
    rows = []
    print(
        f"{'tokenizer':10s}{'tokens':>12s}{'batched tok/s':>16s}{'loop tok/s':>14s}"
        f"{'speed-up':>10s}"
    )
    for name, tok in tokenizers.items():
        ids, t_batch = timed(lambda tok=tok: tok.encode_documents(docs))
        _, t_loop = timed(lambda tok=tok: [np.asarray(tok.encode(d)) for d in docs])
        row = {
            "tokenizer": name,
            "tokens": len(ids),
            "batched_tokens_per_sec": len(ids) / t_batch,
            "loop_tokens_per_sec": len(ids) / t_loop,
            "speedup": t_loop / t_batch,
        }
        rows.append(row)
        print(
            f"{name:10s}{len(ids):12,d}{row['batched_tokens_per_sec']:16,.0f}"
            f"{row['loop_tokens_per_sec']:14,.0f}{row['speedup']:9.1f}x"
        )
    print(f"bpe training (vocab 4096) on the training text: {bpe_train_s:.2f} s")

    with (
        tempfile.TemporaryDirectory() as cache,
        initialize_config_dir(config_dir=config_dir(), version_base="1.3"),
    ):
        starts = {}
        for tok in ("char", "gpt2"):
            cfg = compose("config", overrides=[f"data/tokenizer={tok}", f"data.cache_dir={cache}"])
            _, cold = timed(lambda cfg=cfg: prepare(cfg.data, 128))
            _, warm = timed(lambda cfg=cfg: prepare(cfg.data, 128))
            starts[tok] = {"cold_seconds": cold, "warm_seconds": warm}
            print(f"prepare() data=kjv {tok}: cold {cold:.2f} s, warm cache {warm:.2f} s")
    out = Path(__file__).parent / "results" / "tokenizer_speed.json"
    out.write_text(
        json.dumps({"rows": rows, "bpe_train_seconds": bpe_train_s, "prepare": starts}, indent=2)
    )


if __name__ == "__main__":
    main()
