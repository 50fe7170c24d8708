import pytest
import torch

from tinygpt.errors import TinyGPTError
from tinygpt.model import GPTConfig, TinyGPT


def make(**kw) -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(
        GPTConfig(
            **{"vocab_size": 50, "d_model": 32, "n_layers": 2, "n_heads": 4, "context": 16, **kw}
        )
    )


def test_causality_future_tokens_do_not_change_past_logits():
    model = make().eval()
    x = torch.randint(0, 50, (2, 16))
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % 50
    lx, _ = model(x)
    ly, _ = model(y)
    torch.testing.assert_close(lx[:, :10], ly[:, :10])
    assert not torch.allclose(lx[:, 10:], ly[:, 10:])


def test_input_and_output_embeddings_are_tied():
    model = make()
    assert model.lm_head.weight is model.wte.weight
    assert model.lm_head.weight.data_ptr() == model.wte.weight.data_ptr()


@pytest.mark.parametrize(("d", "layers", "bias"), [(32, 2, True), (64, 3, True), (48, 1, False)])
def test_parameter_and_flop_formulas_match_the_module(d, layers, bias):
    model = make(d_model=d, n_layers=layers, n_heads=4, bias=bias)
    counted = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == counted
    b = 1 if bias else 0
    # blocks: qkv, proj, fc, proj matrices (12 d^2), their biases (9 d), two LayerNorms (2d + 2d)
    per_block = 12 * d * d + 9 * d * b + 2 * (d + d * b)
    non_embedding = layers * per_block + (d + d * b)  # + final LayerNorm
    assert model.num_non_embedding_parameters() == non_embedding
    assert model.num_parameters() == non_embedding + 50 * d + 16 * d
    assert model.flops_per_token() == 6 * non_embedding + 6 * layers * 16 * d


def test_bad_head_count_is_rejected_before_building():
    with pytest.raises(TinyGPTError, match=r"not divisible.*choose n_heads from \[1, 2, 3, 5"):
        GPTConfig(vocab_size=10, d_model=30, n_heads=4)


def test_residual_projections_use_scaled_init():
    model = make(d_model=64, n_layers=8)
    std = model.blocks[0].attn.proj.weight.std().item()
    assert std == pytest.approx(0.02 / 4, rel=0.15)  # 0.02 / sqrt(2 * 8)
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_tiny_model_overfits_one_batch():
    model = make(dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.randint(0, 50, (4, 17))
    for _ in range(300):
        _, loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
