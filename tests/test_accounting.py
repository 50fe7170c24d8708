"""What N and C count (tinygpt/accounting.py), checked against a FLOP counter and the model."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from tinygpt.accounting import Counts, FlopCount
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train.compute import flops_per_token, meta_model, vocab_size

SHAPES = [  # (vocab, d_model, layers, heads, context): the main job's ends, and a deeper model
    (1024, 16, 2, 2, 128),
    (1024, 64, 2, 2, 128),
    (256, 48, 3, 4, 64),
]


def counted(model: TinyGPT, context: int) -> dict[str, float]:
    """FLOPs per token of one forward and backward pass, by op, as torch's counter sees them:
    attention through the math kernel, so its two matmuls are visible (bmm) at full T x T."""
    x = torch.randint(0, model.cfg.vocab_size, (2, context))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(x, x)
        loss.backward()
    ops = counter.get_flop_counts()["Global"]
    return {str(op).removeprefix("aten."): n / x.numel() for op, n in ops.items()}


@pytest.mark.parametrize(("vocab", "d", "layers", "heads", "context"), SHAPES)
def test_each_convention_against_a_count_of_the_models_matmuls(vocab, d, layers, heads, context):
    model = TinyGPT(GPTConfig(vocab, d, layers, heads, context))
    ops = counted(model, context)
    assert set(ops) == {"mm", "addmm", "bmm"}
    linear = ops["mm"] + ops["addmm"]  # the blocks' layers and the readout
    causal = ops["bmm"] / 2  # a query attends to the keys before it: half of T x T
    counts = Counts.of(model)
    exact = counts.flops_per_token(FlopCount.exact)
    assert exact == pytest.approx(linear + causal, rel=0.01)
    # Kaplan's is the count without the readout's 6·V·d; its 6N also charges six FLOPs to each
    # bias and norm weight, which are not matmuls (4 % of the count at d16).
    readout = 6 * vocab * d
    vectors = 6 * sum(p.numel() for p in model.parameters() if p.ndim == 1)
    kaplan = linear - readout + causal + vectors
    assert counts.flops_per_token("kaplan") == pytest.approx(kaplan, rel=0.01)
    # Chinchilla's 6·N_total: every parameter six times, attention not at all.
    assert counts.flops_per_token("chinchilla") == 6 * sum(p.numel() for p in model.parameters())
    assert counts.parameters("total") - counts.parameters("non_embedding") == (vocab + context) * d
    # The readout is why the conventions part at small width: 0.39 of the FLOPs counted at d16.
    if (vocab, d) == (1024, 16):
        assert counts.flops_per_token("kaplan") / exact == pytest.approx(0.40, abs=0.01)


def test_a_run_records_every_convention_and_the_old_names_stay_kaplans():
    model = TinyGPT(GPTConfig(1024, 32, 2, 2, 128))
    m = Counts.of(model).metrics(tokens=1000)
    for conv in ("exact", "kaplan", "chinchilla"):
        assert m[f"flops_{conv}"] == m[f"flops_per_token_{conv}"] * 1000
    assert m["flops"] == m["flops_kaplan"] and m["flops_per_token"] == model.flops_per_token()
    assert m["parameters"] == model.num_parameters()


def test_compute_budgets_are_priced_with_the_runs_vocabulary(make_cfg):
    """IsoFLOP's token budgets price the readout: the meta model has the tokenizer's vocab."""
    cfg = make_cfg("data/tokenizer=byte", "model.d_model=32")
    assert vocab_size(cfg) == 256
    real = Counts.of(meta_model(cfg.model, 256))
    assert flops_per_token(cfg) == real.flops_per_token("exact")  # isoflop.flops's default
    assert flops_per_token(cfg, "kaplan") == real.flops_per_token("kaplan")
    # exact - kaplan: the readout's 6·V·d in, the biases' and norms' 6 per parameter out.
    vectors = sum(p.numel() for p in meta_model(cfg.model, 256).parameters() if p.ndim == 1)
    assert flops_per_token(cfg) - flops_per_token(cfg, "kaplan") == 6 * 256 * 32 - 6 * vectors
