"""Bits per byte: the bytes each token spells, the metric every run logs beside val_loss, and
the laws fitted to it (fit.metric=val_bpb)."""

import json
import math

import pandas as pd
import pytest
import torch

from tests.conftest import tinygpt_cli
from tinygpt.data.tokenizers import ByteTokenizer, CharTokenizer, train_bpe
from tinygpt.hardware import Runtime
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train.job import run
from tinygpt.train.loop import evaluate

TEXT = "In the beginning God créated the heaven and the earth. — Genesis 1:1"


@pytest.mark.parametrize(
    "tokenizer",
    [CharTokenizer.fit([TEXT]), ByteTokenizer(), train_bpe([TEXT] * 20, vocab_size=300)],
    ids=["char", "byte", "bpe"],
)
def test_the_bytes_of_the_tokens_are_the_bytes_of_the_text(tokenizer):
    ids = tokenizer.encode(TEXT)
    assert tokenizer.token_bytes()[ids].sum() == len(TEXT.encode("utf-8"))


def test_bpe_end_of_text_spells_no_bytes():
    tok = train_bpe([TEXT] * 20, vocab_size=300)
    assert tok.token_bytes()[tok.eot] == 0


def test_bits_per_byte_is_the_loss_in_bits_over_the_bytes():
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(vocab_size=256, d_model=16, n_layers=1, n_heads=2, context=8))
    windows = torch.randint(0, 256, (6, 9))
    runtime = Runtime(torch.device("cpu"), None, False)
    one_byte = evaluate(model, windows, 4, runtime, torch.ones(256, dtype=torch.int64))
    assert one_byte["bpb"] == pytest.approx(one_byte["loss"] / math.log(2), rel=1e-5)
    two_bytes = evaluate(model, windows, 4, runtime, torch.full((256,), 2))
    assert two_bytes["bpb"] == pytest.approx(one_byte["bpb"] / 2, rel=1e-6)


def test_every_run_reports_bits_per_byte(make_cfg, tmp_path):
    run(make_cfg(), out_dir=tmp_path)
    res = json.loads((tmp_path / "results.json").read_text())
    # KJV is ASCII but for a few characters: bits per byte ≈ the loss in bits per character
    assert res["final_val_bpb"] == pytest.approx(res["final_val_loss"] / math.log(2), rel=0.02)


@pytest.mark.slow
def test_laws_fitted_to_bits_per_byte(sweep_store, cache_dir, tmp_path):
    uri = f"sqlite:///{sweep_store / 'mlflow.db'}"
    args = [f"source.uri={uri}", "fit.bootstrap=50", "log_to_mlflow=false", "plots=false"]
    for d in ("bpb", "nats"):
        (tmp_path / d).mkdir()
    bpb = tinygpt_cli(
        *args,
        "fit.metric=val_bpb",
        cwd=tmp_path / "bpb",
        cache_dir=cache_dir,
        app="tinygpt.analyze",
    )
    nats = tinygpt_cli(*args, cwd=tmp_path / "nats", cache_dir=cache_dir, app="tinygpt.analyze")
    assert bpb.returncode == 0 and nats.returncode == 0, bpb.stderr + nats.stderr
    bpb_points, nats_points = (
        pd.read_csv(next((tmp_path / d).glob("analysis/*/*/points.csv"))).sort_values("run_id")
        for d in ("bpb", "nats")
    )
    assert len(bpb_points) == 8
    # the KJV's bytes are nearly all one character each: bits per byte ≈ nats / ln 2
    ratio = bpb_points["loss"].to_numpy() / nats_points["loss"].to_numpy()
    assert ratio == pytest.approx(1 / math.log(2), rel=0.02)
    assert "L(N): L(N) = " in bpb.stdout
