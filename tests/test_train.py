import json
import math

import pytest
import torch

from tinygpt import checkpoint
from tinygpt.config import Attention
from tinygpt.errors import TinyGPTError
from tinygpt.hardware import Runtime
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train import loop
from tinygpt.train.job import run
from tinygpt.train.mfu import mfu, peak_flops
from tinygpt.train.optim import param_groups


def test_seed_gives_the_same_final_loss(make_cfg, tmp_path):
    a = run(make_cfg("seed=3"), out_dir=tmp_path / "a")
    b = run(make_cfg("seed=3"), out_dir=tmp_path / "b")
    c = run(make_cfg("seed=4"), out_dir=tmp_path / "c")
    assert a == b
    assert a != c


def test_fifty_steps_resume_fifty_equals_one_hundred(make_cfg, tmp_path):
    steps = ["training.max_steps=100", "training.save_interval=1000", "model.dropout=0.1"]
    full = run(make_cfg(*steps), out_dir=tmp_path / "full")
    paused = run(make_cfg(*steps, "training.stop_at=50"), out_dir=tmp_path / "chunked")
    assert math.isnan(paused)
    assert checkpoint.newest(tmp_path / "chunked").name == "step_50.pt"
    resumed = run(make_cfg(*steps, "training.resume=true"), out_dir=tmp_path / "chunked")
    assert resumed == full
    res = json.loads((tmp_path / "chunked" / "results.json").read_text())
    assert res["total_steps"] == 100


def test_results_and_checkpoints_are_complete(make_cfg, tmp_path):
    run(make_cfg("training.save_interval=10"), out_dir=tmp_path)
    res = json.loads((tmp_path / "results.json").read_text())
    expected = {
        "final_val_loss",
        "final_val_perplexity",
        "best_val_loss",
        "test_loss",
        "total_steps",
        "tokens_seen",
        "parameters",
        "non_embedding_parameters",
        "flops",
        "tokens_per_sec",
        "wall_seconds",
    }
    assert expected <= res.keys()
    assert res["total_steps"] == 20 and res["tokens_seen"] == 20 * 8 * 32
    assert res["flops"] == res["flops_per_token"] * res["tokens_seen"]
    assert res["final_val_perplexity"] == pytest.approx(math.exp(res["final_val_loss"]))
    names = {p.name for p in tmp_path.glob("*.pt")}
    assert names == {"step_10.pt", "step_20.pt", "best.pt", "final.pt"}
    ck = checkpoint.load(tmp_path / "final.pt")
    assert {"model", "optimizer", "scheduler", "rng", "sampler", "tokenizer"} <= ck.keys()
    assert (tmp_path / "tokenizer.json").exists()


def test_token_budget_sets_the_number_of_steps(make_cfg, tmp_path):
    run(make_cfg("training.max_steps=null", "training.tokens=4000"), out_dir=tmp_path)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["total_steps"] == math.ceil(4000 / (8 * 32))


@pytest.mark.parametrize("opt", ["adamw", "adam", "sgd"])
def test_every_optimizer_trains(make_cfg, tmp_path, opt):
    loss = run(make_cfg(f"optimizer={opt}", "optimizer.grad_accum=2"), out_dir=tmp_path)
    assert loss < 4.0  # the uniform guess over ~66 characters is ln(66) = 4.19


def test_divergence_stops_the_run_with_a_clear_error(make_cfg, tmp_path):
    cfg = make_cfg(
        "optimizer.lr=1e30", "optimizer.grad_clip=null", "optimizer.schedule.warmup_steps=1"
    )
    with pytest.raises(TinyGPTError, match="diverged"):
        run(cfg, out_dir=tmp_path)


def test_no_weight_decay_on_norms_biases_and_embeddings():
    from tinygpt.model import GPTConfig, TinyGPT

    model = TinyGPT(GPTConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, context=8))
    decay, no_decay = param_groups(model, 0.1, 1e-3)
    assert all(p.dim() == 2 for p in decay["params"])
    undecayed = {id(p) for p in no_decay["params"]}
    assert id(model.wte.weight) in undecayed and id(model.wpe.weight) in undecayed
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == model.num_parameters()


def test_bf16_autocast_path_runs_on_cpu(make_cfg, tmp_path):
    from tinygpt import hardware

    cfg = make_cfg("hardware=cpu", "hardware.precision=bf16")
    runtime = hardware.resolve(cfg.hardware)
    model = TinyGPT(GPTConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, context=8))
    with runtime.autocast():
        logits, loss = model(torch.randint(0, 20, (2, 8)), torch.randint(0, 20, (2, 8)))
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32  # loss in fp32
    assert run(cfg, out_dir=tmp_path) < 4.0  # it learns (uniform over ~66 chars: 4.19)


def test_asking_for_cuda_without_one_is_a_clear_error(make_cfg, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TinyGPTError, match="hardware=cpu"):
        run(make_cfg("hardware=cuda"), out_dir=tmp_path)


@pytest.mark.parametrize(
    ("attention", "kernel"),
    [
        ("auto", "aten::_scaled_dot_product_flash_attention_for_cpu"),
        ("math", "aten::_scaled_dot_product_attention_math"),
        # cuDNN has no CPU kernel: math runs instead, no error.
        ("cudnn", "aten::_scaled_dot_product_attention_math"),
    ],
)
def test_attention_preference_selects_the_sdpa_kernel(attention, kernel):
    rt = Runtime(torch.device("cpu"), None, compile=False, attention=Attention(attention))
    q = torch.randn(2, 2, 16, 8)
    with torch.profiler.profile() as prof, rt.autocast():
        torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    ops = {e.name for e in prof.events()}
    assert kernel in ops
    assert not {o for o in ops if "_scaled_dot_product_" in o} - {kernel}


def test_attention_kernel_leaves_the_loss_alone(make_cfg, tmp_path):
    auto = run(make_cfg("hardware=cpu"), out_dir=tmp_path / "auto")
    math_ = run(make_cfg("hardware=cpu", "hardware.attention=math"), out_dir=tmp_path / "math")
    assert math_ == pytest.approx(auto, rel=1e-4)


def test_compiled_model_trains_to_the_eager_loss(make_cfg, tmp_path):
    eager = run(make_cfg("hardware=cpu"), out_dir=tmp_path / "eager")
    compiled = run(make_cfg("hardware=cpu", "hardware.compile=true"), out_dir=tmp_path / "compiled")
    assert compiled == pytest.approx(eager, rel=1e-5)


def test_compile_failure_falls_back_to_eager(make_cfg, tmp_path, monkeypatch, caplog):
    eager = run(make_cfg("hardware=cpu"), out_dir=tmp_path / "eager")

    def no_compiler(model, **kwargs):
        def first_call(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return first_call

    monkeypatch.setattr(torch, "compile", no_compiler)
    fallback = run(make_cfg("hardware=cpu", "hardware.compile=true"), out_dir=tmp_path / "fb")
    assert fallback == eager
    assert "torch.compile failed (InvalidCxxCompiler" in caplog.text
    assert "falling back to eager mode" in caplog.text


def test_peak_rates_and_palm_flops():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bf16") == 756e12
    assert peak_flops("NVIDIA A100-SXM4-40GB", "fp32") == 156e12
    assert peak_flops("Some Future GPU", "bf16") is None
    model = TinyGPT(GPTConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=4, context=32))
    n = model.num_non_embedding_parameters()
    assert model.palm_flops_per_token() == 6 * (n + 100 * 64) + 12 * 2 * 64 * 32
    assert model.palm_flops_per_token() > model.flops_per_token()
    assert mfu(model, 1e6, None) is None


def test_mfu_is_logged_where_the_peak_is_known(make_cfg, tmp_path, monkeypatch):
    run(make_cfg("hardware=cpu"), out_dir=tmp_path / "cpu")
    assert json.loads((tmp_path / "cpu" / "results.json").read_text())["mfu"] is None

    monkeypatch.setattr(loop, "device_peak", lambda device, precision: 1e12)
    run(make_cfg("hardware=cpu"), out_dir=tmp_path / "peak")
    res = json.loads((tmp_path / "peak" / "results.json").read_text())
    model = TinyGPT(GPTConfig(**checkpoint.load(tmp_path / "peak" / "final.pt")["model_config"]))
    expected = model.palm_flops_per_token() * res["steady_tokens_per_sec"] / 1e12
    assert res["mfu"] == pytest.approx(expected)


def test_compiled_model_follows_the_attention_setting_of_its_run():
    """A graph traced under one kernel must not be reused under another (in-process and FX
    graph caches do not key on the SDPA choice): a sweep over hardware.attention in one process."""

    def kernels(attention: str) -> set[str]:
        torch.manual_seed(0)
        model = TinyGPT(GPTConfig(vocab_size=20, d_model=32, n_layers=1, n_heads=2, context=16))
        rt = Runtime(torch.device("cpu"), None, compile=True, attention=Attention(attention))
        step = rt.compiled(model)
        x = torch.randint(0, 20, (2, 16))
        with rt.autocast():
            step(x, x)
        with torch.profiler.profile() as prof, rt.autocast():
            step(x, x)
        return {e.name for e in prof.events() if "scaled_dot_product" in e.name}

    assert kernels("auto") == {"aten::_scaled_dot_product_flash_attention_for_cpu"}
    assert not kernels("math")  # the math kernel is decomposed into the compiled graph
    assert kernels("auto") == {"aten::_scaled_dot_product_flash_attention_for_cpu"}


def test_a_truncated_newest_checkpoint_is_named_and_the_one_before_it_used(
    make_cfg, tmp_path, caplog
):
    steps = ["training.max_steps=60", "training.save_interval=20"]
    full = run(make_cfg(*steps), out_dir=tmp_path / "full")
    run(make_cfg(*steps, "training.stop_at=40"), out_dir=tmp_path / "cut")
    damaged = tmp_path / "cut" / "step_40.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # a disk that filled up mid-write
    with caplog.at_level("WARNING", logger="tinygpt"):
        resumed = run(make_cfg(*steps, "training.resume=true"), out_dir=tmp_path / "cut")
    assert f"checkpoint {damaged} is damaged" in caplog.text
    assert resumed == full  # from step 20, to the same final loss


def test_resume_when_every_checkpoint_is_damaged_fails_naming_them_unless_told_to_restart(
    make_cfg, tmp_path
):
    """`training.resume=true` asked to continue: with no checkpoint that loads it stops with one
    line and leaves the run directory as it was; damaged_checkpoints=restart starts over."""
    steps = ["training.max_steps=40", "training.save_interval=20"]
    out = tmp_path / "cut"
    run(make_cfg(*steps, "training.stop_at=20"), out_dir=out)
    for ckpt in checkpoint.candidates(out):
        ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a disk that filled up mid-write
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(TinyGPTError, match=r"every checkpoint in .* is damaged \(step_20\.pt\)"):
        run(make_cfg(*steps, "training.resume=true"), out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    restarted = run(
        make_cfg(*steps, "training.resume=true", "training.damaged_checkpoints=restart"),
        out_dir=out,
    )
    assert restarted == run(make_cfg(*steps), out_dir=tmp_path / "fresh")


def test_cpu_bf16_is_never_automatic_and_warns_where_it_is_emulated(make_cfg, caplog, monkeypatch):
    from tinygpt import hardware

    for units in ([], ["amx_bf16"]):
        monkeypatch.setattr(hardware, "cpu_bf16_units", lambda u=units: u)
        assert hardware.resolve(make_cfg("hardware=cpu").hardware).precision == "fp32"
        caplog.clear()
        with caplog.at_level("WARNING", logger="tinygpt"):
            rt = hardware.resolve(make_cfg("hardware=cpu", "hardware.precision=bf16").hardware)
        assert rt.precision == "bf16"
        assert ("emulated" in caplog.text) == (not units)


def test_the_cpu_reports_its_bf16_units():
    from tinygpt import hardware
    from tinygpt.tracking.sysinfo import system_tags

    caps = torch.cpu.get_capabilities()
    expected = [u for u in ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16") if caps.get(u)]
    assert hardware.cpu_bf16_units() == expected
    assert system_tags(torch.device("cpu"))["cpu_bf16"] == (",".join(expected) or "none")


def test_a_budget_past_one_pass_warns_and_the_split_is_recorded(
    make_cfg, small_text, tmp_path, caplog
):
    tokens = 60_000  # about twice the small corpus's training split
    cfg = make_cfg("data=text", f"data.path={small_text}", "training.max_steps=null",
                   f"training.tokens={tokens}")  # fmt: skip
    with caplog.at_level("WARNING", logger="tinygpt"):
        run(cfg, out_dir=tmp_path)
    split = json.loads((tmp_path / "results.json").read_text())["train_split_tokens"]
    assert 0 < split < tokens
    assert f"passes over the training split ({split:,} tokens)" in caplog.text
