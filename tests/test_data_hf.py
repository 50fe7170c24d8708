"""Corpora through `datasets` (offline, on files in the hub's layouts) and every tokenizer."""

import random
from pathlib import Path

import datasets
import numpy as np
import pytest

from tests.conftest import TINY, tinygpt_cli
from tinygpt.data import corpora
from tinygpt.data.dataset import prepare, select_training
from tinygpt.data.tokenizers import ByteTokenizer, gpt2, load_tokenizer, save_tokenizer, train_bpe
from tinygpt.errors import TinyGPTError, instantiate
from tinygpt.train.job import run

WORDS = [
    "once",
    "upon",
    "a",
    "time",
    "there",
    "was",
    "a",
    "little",
    "girl",
    "named",
    "lily",
    "she",
    "loved",
    "to",
    "play",
    "in",
    "the",
    "park",
]


def story(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90))).capitalize() + "."


@pytest.fixture(scope="module")
def fake_tinystories(tmp_path_factory) -> Path:
    """roneneldan/TinyStories' layout: data/{train,validation}-00000-of-00001.parquet."""
    root = tmp_path_factory.mktemp("TinyStories")
    (root / "data").mkdir()
    rng = random.Random(0)
    for split, n in (("train", 500), ("validation", 120)):
        ds = datasets.Dataset.from_dict({"text": [story(rng) for _ in range(n)]})
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_tinystories_splits_train_and_carves_val_test_from_validation(fake_tinystories):
    split = corpora.hf(
        str(fake_tinystories),
        split_map={"train": "train", "val": "validation", "test": "validation"},
    )
    assert len(split["train"]) == 500
    assert len(split["val"]) + len(split["test"]) == 120
    assert not set(split["val"]) & set(split["test"])
    assert set(split["val"]) | set(split["test"]) <= set(corpora.hf(str(fake_tinystories)))


@pytest.mark.parametrize(
    "tokenizer",
    [
        ["data/tokenizer=char"],
        ["data/tokenizer=byte"],
        ["data/tokenizer=bpe", "data.tokenizer.vocab_size=300"],
        ["data/tokenizer=gpt2"],
    ],
)
def test_every_tokenizer_trains_on_tinystories(make_cfg, fake_tinystories, tmp_path, tokenizer):
    cfg = make_cfg(
        "data=tinystories",
        f"data.path={fake_tinystories}",
        *tokenizer,
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    loss = run(cfg, out_dir=tmp_path / "run")
    tok = load_tokenizer(tmp_path / "run" / "tokenizer.json")  # decodable without the corpus
    assert loss < np.log(tok.vocab_size)  # it learns: below a uniform guess over the vocabulary
    data = prepare(cfg.data, cfg.model.context)
    assert data.cache_hit  # the second preparation re-tokenizes nothing
    assert tok.vocab_size == data.tokenizer.vocab_size
    assert data.splits["train"].dtype == np.uint16
    # The val split holds the validation documents, in order, joined as the tokenizer joins them.
    val_docs = instantiate(cfg.data.corpus)["val"]
    joined = ("<|endoftext|>" if getattr(tok, "eot", None) is not None else "\n\n").join(val_docs)
    text = tok.decode(data.splits["val"][:50])
    assert len(text) >= 50 and joined.startswith(text)


def test_tinystories_end_to_end_from_the_cli(fake_tinystories, tmp_path, cache_dir):
    data = ["data=tinystories", f"data.path={fake_tinystories}", "data.tokenizer.vocab_size=300"]
    proc = tinygpt_cli(*TINY, *data, cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.glob("outputs/*/*/results.json"))


def test_hub_unreachable_and_nothing_cached_is_one_clear_message(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    proc = tinygpt_cli(*TINY, "data=tinystories", cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 2
    assert "point data.path at their directory" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["jsonl", "text", "save_to_disk", "arrow"])
def test_local_files_in_the_formats_datasets_reads(tmp_path, kind):
    rng = random.Random(1)
    texts = [story(rng) for _ in range(50)]
    ds = datasets.Dataset.from_dict({"text": texts})
    if kind == "jsonl":
        path = tmp_path / "c.jsonl"
        ds.to_json(str(path))
    elif kind == "text":
        path = tmp_path / "c.txt"
        path.write_text("\n".join(texts))
    elif kind == "save_to_disk":
        path = tmp_path / "saved"
        ds.save_to_disk(str(path))
    else:
        path = tmp_path / "arrowdir"
        ds.save_to_disk(str(path))
        path = next(path.glob("*.arrow"))
    assert sorted(corpora.hf(str(path))) == sorted(texts)


def test_bad_hf_settings_are_clear_errors(fake_tinystories):
    with pytest.raises(TinyGPTError, match="data.text_field='story'"):
        corpora.hf(str(fake_tinystories), text_field="story")
    with pytest.raises(TinyGPTError, match="data.split_map names split"):
        corpora.hf(str(fake_tinystories), split_map={"train": "train", "val": "dev", "test": "dev"})
    with pytest.raises(TinyGPTError, match="vocab_size=100"):
        train_bpe(["some text"], vocab_size=100)


def test_fractions_are_nested_for_tinystories_too(fake_tinystories):
    split_map = {"train": "train", "val": "validation", "test": "validation"}
    train = corpora.hf(str(fake_tinystories), split_map=split_map)["train"]
    small, big = (set(select_training(train, f, None, seed=3)) for f in (0.2, 0.6))
    assert small < big


def test_round_trips(tmp_path):
    text = "Hello, world! Ünïcödé — 東京 and emoji 🙂.\nNew line."
    bpe = train_bpe([text * 20, "other text " * 50], vocab_size=300)
    for tok in (ByteTokenizer(), bpe, gpt2()):
        assert tok.decode(tok.encode(text)) == text
        save_tokenizer(tok, tmp_path / "t.json")
        again = load_tokenizer(tmp_path / "t.json")
        assert list(again.encode(text)) == list(tok.encode(text))
    assert list(gpt2().encode("Hello world")) == [15496, 995]  # OpenAI's ids
    docs = gpt2().encode_documents(["a", "b"])
    assert list(docs) == [64, 50256, 65]


@pytest.mark.parametrize("which", ["gpt2", "bpe"])
def test_fast_batched_encoding_gives_the_tokenizers_ids(which):
    docs = corpora.kjv()[:120]
    tok = gpt2() if which == "gpt2" else train_bpe(docs, vocab_size=1000)
    expected = []
    for enc in tok.tok.encode_batch(docs):
        expected += [*enc.ids, tok.eot]
    assert tok.encode_documents(docs).tolist() == expected[:-1]
