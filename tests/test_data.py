from pathlib import Path

import numpy as np
import pytest

from tinygpt.data import corpora
from tinygpt.data.dataset import (
    BatchSampler,
    prepare,
    select_training,
    split_documents,
    token_dtype,
)
from tinygpt.data.tokenizers import CharTokenizer, load_tokenizer, save_tokenizer
from tinygpt.errors import TinyGPTError


@pytest.fixture(scope="module")
def kjv_docs() -> list[str]:
    return corpora.kjv()


def test_kjv_is_one_document_per_chapter(kjv_docs):
    assert len(kjv_docs) == 1189
    assert kjv_docs[0].startswith("In the beginning God created the heaven and the earth.")
    assert 4_000_000 < sum(map(len, kjv_docs)) < 4_600_000


def test_char_tokenizer_round_trip(tmp_path, kjv_docs):
    tok = CharTokenizer.fit(kjv_docs[:50])
    text = kjv_docs[3]
    assert tok.decode(tok.encode(text)) == text
    save_tokenizer(tok, tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    assert again.vocab_size == tok.vocab_size
    np.testing.assert_array_equal(again.encode(text), tok.encode(text))


def test_unseen_characters_map_to_unknown():
    tok = CharTokenizer.fit(["abc"])
    ids = tok.encode("abz€")
    assert list(ids[:2]) == [1, 2] and list(ids[2:]) == [0, 0]
    assert tok.decode(ids) == "ab" + CharTokenizer.UNK * 2


def test_split_is_disjoint_90_5_5_and_stable_when_documents_are_added(kjv_docs):
    split = split_documents(kjv_docs)
    sets = {k: set(v) for k, v in split.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"])
    assert not (sets["val"] & sets["test"])
    assert sum(map(len, split.values())) == len(kjv_docs)
    assert 0.85 < len(split["train"]) / len(kjv_docs) < 0.95
    more = split_documents([*kjv_docs, "a brand new document", "and another one"])
    for k in split:
        assert set(split[k]) <= set(more[k])


def test_fractions_are_nested_for_one_seed(kjv_docs):
    train = split_documents(kjv_docs)["train"]
    small, mid, full = (select_training(train, f, None, seed=7) for f in (0.1, 0.5, 1.0))
    assert set(small) < set(mid) < set(full) == set(train)
    assert len(mid) == pytest.approx(0.5 * len(train), abs=1)
    assert set(select_training(train, 0.1, None, seed=8)) != set(small)
    capped = select_training(train, 0.5, 10, seed=7)
    assert capped == mid[:10]


def test_bad_fraction_is_a_clear_error(kjv_docs):
    with pytest.raises(TinyGPTError, match="data.fraction"):
        select_training(kjv_docs, 1.5, None, seed=0)


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(66) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32


def test_token_cache_is_written_once_then_hit(make_cfg, tmp_path):
    cfg = make_cfg(f"data.cache_dir={tmp_path}", "data.fraction=0.3")
    first = prepare(cfg.data, 32)
    assert not first.cache_hit
    mtimes = {p: p.stat().st_mtime_ns for p in first.cache_dir.iterdir()}
    second = prepare(cfg.data, 32)
    assert second.cache_hit
    assert {p: p.stat().st_mtime_ns for p in second.cache_dir.iterdir()} == mtimes
    np.testing.assert_array_equal(first.splits["train"], second.splits["train"])
    assert first.corpus_sha256 == second.corpus_sha256 and len(first.corpus_sha256) == 64
    assert first.splits["train"].dtype == np.uint16


def test_text_corpus_of_paragraphs(make_cfg, small_text):
    cfg = make_cfg("data=text", f"data.path={small_text}")
    data = prepare(cfg.data, 32)
    assert sum(data.documents.values()) == 400
    assert data.tokenizer.decode(data.splits["val"][:20]).strip()


def test_missing_text_file_is_a_clear_error(make_cfg, tmp_path):
    cfg = make_cfg("data=text", f"data.path={tmp_path / 'nope.txt'}")
    with pytest.raises(TinyGPTError, match="does not exist"):
        prepare(cfg.data, 32)


def test_split_smaller_than_a_window_is_a_clear_error(make_cfg, tmp_path):
    (tmp_path / "tiny.txt").write_text("\n\n".join(f"p{i}" for i in range(60)))
    cfg = make_cfg("data=text", f"data.path={tmp_path / 'tiny.txt'}", "model.context=512")
    with pytest.raises(TinyGPTError, match="model.context"):
        prepare(cfg.data, 512)


def test_batch_sampler_windows_are_shifted_and_resumable():
    tokens = np.arange(1000, dtype=np.uint16)
    s = BatchSampler(tokens, 4, 8, seed=0)
    w = s.windows(4)
    assert w.shape == (4, 9)
    assert (np.diff(w, axis=1) == 1).all()
    state = s.state_dict()
    a = s.windows(4)
    s.load_state_dict(state)
    np.testing.assert_array_equal(a, s.windows(4))


def test_directory_of_text_files(tmp_path: Path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"file {i}\n\nsecond paragraph {i}")
    assert len(corpora.text(str(tmp_path))) == 6
    assert len(corpora.text(str(tmp_path), unit="file")) == 3


def test_austen_is_a_second_domain_of_chapters(make_cfg, tmp_path):
    docs = corpora.austen()
    assert len(docs) == 275  # 269 chapters of six novels and their front matter
    assert any(d.startswith("CHAPTER I\n\n\nEmma Woodhouse, handsome, clever") for d in docs)
    assert 3_900_000 < sum(map(len, docs)) < 4_200_000
    data = prepare(make_cfg("data=austen", f"data.cache_dir={tmp_path}").data, 32)
    assert (
        data.corpus_sha256 != prepare(make_cfg(f"data.cache_dir={tmp_path}").data, 32).corpus_sha256
    )


def test_missing_austen_files_say_how_to_fetch_them(tmp_path):
    with pytest.raises(TinyGPTError, match="scripts/fetch_austen.sh"):
        corpora.austen(str(tmp_path))


def test_kjv_austen_is_both_corpora_and_one_pass_holds_the_main_jobs_budgets(make_cfg, tmp_path):
    data = prepare(
        make_cfg(
            "data=kjv_austen",
            "data/tokenizer=bpe",
            "data.tokenizer.vocab_size=1024",
            f"data.cache_dir={tmp_path}",
        ).data,
        128,
    )
    described = data.describe()
    assert described["train_documents"] + described["val_documents"] + described[
        "test_documents"
    ] == len(corpora.kjv()) + len(corpora.austen())
    # The main job's largest budget is one pass at most (issue 24: no second pass).
    assert described["train_tokens"] > 2_400_000


def test_a_mix_names_the_part_that_is_not_a_corpus():
    with pytest.raises(TinyGPTError, match=r"data.corpus.parts\[1\] is not a corpus"):
        corpora.mix([["a doc"], {"_target_": "x"}])
    with pytest.raises(TinyGPTError, match="data.corpus.parts is empty"):
        corpora.mix([])
