"""μP: equal to SP at the base width, μP's rules for init, attention, readout and per-group LR,
the coordinate check (flat under μP, growing under SP), and a μP model through the whole job."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tinygpt import checkpoint
from tinygpt.data.dataset import prepare
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.scaling import lr_transfer
from tinygpt.train import coord_check
from tinygpt.train.job import run
from tinygpt.train.optim import param_groups


def model(width: int, parametrization: str, seed: int = 0) -> TinyGPT:
    torch.manual_seed(seed)
    return TinyGPT(
        GPTConfig(
            vocab_size=50,
            d_model=width,
            n_layers=2,
            n_heads=4,
            context=16,
            parametrization=parametrization,
            base_width=32,
        )
    )


def test_at_the_base_width_mup_is_sp_bit_for_bit():
    sp, mup = model(32, "sp"), model(32, "mup")
    for (name, a), (_, b) in zip(sp.state_dict().items(), mup.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = torch.randint(0, 50, (2, 16))
    assert torch.equal(sp(x)[0], mup(x)[0])
    groups_sp, groups_mup = (param_groups(m, 0.1, 1e-3) for m in (sp, mup))
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups_sp] == [
        (g["lr"], g["weight_decay"], len(g["params"])) for g in groups_mup
    ]


def test_mup_scales_init_attention_readout_and_the_hidden_lr_with_width():
    wide = model(128, "mup")  # width_mult 4
    assert wide.cfg.width_mult == 4
    assert wide.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)
    assert wide.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    d_head, base_head = 128 // 4, 32 // 4
    assert wide.blocks[0].attn.scale == pytest.approx(math.sqrt(base_head) / d_head)
    x = torch.randint(0, 50, (2, 16))
    h = wide.drop(wide.wte(x) + wide.wpe(torch.arange(16)))
    for block in wide.blocks:
        h = block(h)
    assert torch.allclose(wide(x)[0], wide.lm_head(wide.ln_f(h)) / 4, atol=1e-6)

    hidden = {id(p) for p in wide.hidden_matrices()}
    assert id(wide.wte.weight) not in hidden and len(hidden) == 2 * 4
    adam = param_groups(wide, 0.1, 1e-3)
    for g in adam:
        is_hidden = {id(p) for p in g["params"]} <= hidden
        assert g["lr"] == pytest.approx(1e-3 / 4 if is_hidden else 1e-3)
        if is_hidden:  # AdamW's decoupled decay lr * wd is width-independent
            assert g["lr"] * g["weight_decay"] == pytest.approx(1e-3 * 0.1)
    sgd = param_groups(wide, 0.0, 0.1, adaptive=False)
    emb = next(g for g in sgd if any(p is wide.wte.weight for p in g["params"]))
    assert emb["lr"] == pytest.approx(0.4)
    assert all(g["lr"] == pytest.approx(0.1) for g in sgd if {id(p) for p in g["params"]} <= hidden)


def test_coordinate_check_is_flat_under_mup_and_grows_under_sp(make_cfg):
    data = prepare(make_cfg().data, 64)
    kwargs = {"widths": [32, 64, 128, 256], "vocab_size": data.tokenizer.vocab_size, "steps": 3}
    sp = coord_check.run(data.splits["train"], parametrization="sp", **kwargs).slopes()
    mup = coord_check.run(data.splits["train"], parametrization="mup", **kwargs).slopes()
    assert max(abs(s) for s in mup.values()) < 0.1, mup
    # SP's residual stream grows about as width^1.2 after 3 steps here, its logits as width^0.3
    assert sp["block 0"] > 0.8 and sp["block 1"] > 0.8 and sp["logits"] > 0.2, sp


@pytest.mark.parametrize("opt", ["adamw", "sgd"])
def test_a_mup_run_resumes_to_the_same_loss_and_reloads_from_its_checkpoint(
    make_cfg, tmp_path, opt
):
    overrides = [
        "model.parametrization=mup",
        "model.d_model=64",
        "model.base_width=16",
        f"optimizer={opt}",
        "optimizer/schedule=wsd",
        "training.max_steps=20",
        "training.save_interval=1000",
    ]
    full = run(make_cfg(*overrides), out_dir=tmp_path / "full")
    assert math.isfinite(full)
    assert math.isnan(run(make_cfg(*overrides, "training.stop_at=10"), out_dir=tmp_path / "half"))
    assert run(make_cfg(*overrides, "training.resume=true"), out_dir=tmp_path / "half") == full
    ckpt = checkpoint.load(tmp_path / "full" / "final.pt")
    assert ckpt["model_config"]["parametrization"] == "mup"
    reloaded = TinyGPT(GPTConfig(**ckpt["model_config"]))
    reloaded.load_state_dict(ckpt["model"])
    assert reloaded.cfg.width_mult == 4


def synthetic_sweep(drift_per_octave: float, seeds: int = 2) -> pd.DataFrame:
    """Loss = (log2 lr − log2 lr*(w))² + noise, lr*(w) = 2^-7 · (w/32)^(−drift)."""
    rng = np.random.default_rng(0)
    rows = []
    for series, slope in (("sp", drift_per_octave), ("mup", 0.0)):
        for w in (32, 64, 128, 256):
            best = -7 - slope * np.log2(w / 32)
            for k in range(-10, -3):
                for s in range(seeds):
                    loss = 2 + 0.05 * (k - best) ** 2 + rng.normal(0, 0.002)
                    cell = {"optimizer.lr": 2.0**k, "model.d_model": w}
                    rows.append({**cell, "model.parametrization": series, "loss": loss, "seed": s})
    return pd.DataFrame(rows)


def test_lr_transfer_view_finds_each_widths_optimum_and_the_drift(tmp_path):
    table = synthetic_sweep(drift_per_octave=0.5, seeds=4)
    found = lr_transfer.optima(table, boot=200)
    by = {(o.series, o.width): o for o in found}
    assert by[("mup", 256)].lr == pytest.approx(2**-7, rel=0.1)
    assert by[("sp", 256)].lr == pytest.approx(2**-8.5, rel=0.1)
    lo, hi = by[("sp", 128)].ci95
    assert lo <= 2**-8 <= hi
    drifts = lr_transfer.drift(found)
    assert drifts["sp"]["octaves"] == pytest.approx(-1.5, abs=0.1)
    assert abs(drifts["mup"]["octaves"]) < 0.1
    paths, text = lr_transfer.write(table, tmp_path)
    assert {p.name for p in paths} == {"lr_transfer.csv", "lr_transfer.json", "lr_transfer.png"}
    assert "sp: lr* drifts ×0.3" in text and "from width 32 to 256" in text


def test_an_optimum_on_the_grids_edge_is_named_not_extrapolated():
    table = synthetic_sweep(drift_per_octave=2.5, seeds=1)  # width 256's best is off the grid
    by = {(o.series, o.width): o for o in lr_transfer.optima(table)}
    assert by[("sp", 256)].lr == 2**-10 and "smallest LR" in by[("sp", 256)].note
    assert by[("mup", 64)].ci95 is None  # one seed: no interval


def test_a_mup_base_adapts_with_lora_and_serves_text(make_cfg, tmp_path, cache_dir):
    from hydra import compose, initialize_config_dir

    from tinygpt.app import config_dir
    from tinygpt.seal import adapt as seal
    from tinygpt.serving import Generator

    base_dir = tmp_path / "base"
    run(
        make_cfg(
            "model.parametrization=mup",
            "model.d_model=64",
            "model.base_width=16",
            "model.context=64",
            "training.max_steps=20",
        ),
        out_dir=base_dir,
    )
    base, tok, _ = seal.load_base(str(base_dir))
    assert base.cfg.parametrization == "mup" and base.cfg.width_mult == 4
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"data.cache_dir={cache_dir}",
                "tracking.enabled=false",
                "seal=lora",
                f"seal.base={base_dir}",
            ],
        )
    adapted = seal.lora(base, cfg.seal)
    seq = torch.from_numpy(tok.encode("In the beginning God created the heaven and the earth." * 2))
    before = seal.continuation_loss(adapted, seal.Passage(seq[:30], seq[30:60]))
    seal.train_on(adapted, seq[:60], 5, 1e-2, 4, base.cfg.context, 0)
    assert seal.continuation_loss(adapted, seal.Passage(seq[:30], seq[30:60])) < before
    text = Generator(base, tok).complete(["And God said"], max_new_tokens=10, seed=1)
    assert len(text[0]) == 10
