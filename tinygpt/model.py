"""TinyGPT: a GPT decoder small enough to read in one sitting.

Learned positional embeddings, pre-norm blocks, causal self-attention through
``scaled_dot_product_attention``, a 4x GELU MLP, tied input/output embeddings and GPT-2 init.

Two parametrizations: the standard one (SP, GPT-2's) and the Maximal Update Parametrization
(μP, Yang et al. 2022, "Tensor Programs V"), under which the best learning rate stops moving with
width. μP here is the recipe of ``mup``'s MuSharedReadout + MuAdam/MuSGD written out (about 40
lines across this file and ``train/optim.py``) rather than the library: ``mup`` needs a base and a
delta model built at start-up to infer shapes (``set_base_shapes``) and keeps them as attributes on
the parameters, which checkpoints, ``torch.compile`` and LoRA's wrapped layers do not carry; here
the width multiplier ``d_model / base_width`` is known from the config. At ``base_width`` μP is
SP exactly, so an LR tuned there under SP is the μP LR for every width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinygpt.errors import TinyGPTError


@dataclass
class GPTConfig:
    """The model's shape: what ``conf/model/<option>.yaml`` builds (its ``_target_``), the
    vocabulary filled in from the tokenizer."""

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    context: int = 128
    dropout: float = 0.0
    bias: bool = True
    parametrization: str = "sp"  # "sp" or "mup"
    base_width: int = 32  # the width at which μP equals SP

    @classmethod
    def from_node(cls, node: Mapping[str, Any], vocab_size: int) -> GPTConfig:
        """The composed ``model`` node instantiated (its ``_target_`` is this class), with the
        tokenizer's vocabulary, or the node's ``vocab_size`` where that forces a larger table."""
        from tinygpt.errors import instantiate

        return instantiate(node, vocab_size=max(vocab_size, node.get("vocab_size") or 0))

    def __post_init__(self) -> None:
        self.parametrization = getattr(self.parametrization, "value", self.parametrization)
        if self.d_model % self.n_heads:
            heads = [h for h in range(1, min(self.d_model, 32) + 1) if self.d_model % h == 0]
            raise TinyGPTError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads="
                f"{self.n_heads}: choose n_heads from {heads}"
            )

    @property
    def width_mult(self) -> float:
        """μP's width multiplier d_model / base_width; 1 under SP (nothing rescales)."""
        return self.d_model / self.base_width if self.parametrization == "mup" else 1.0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)
        # SP: 1/sqrt(d_head). μP: ∝ 1/d_head (q and k become correlated as they train, so their
        # dot product grows like d_head, not its square root), equal to SP at the base width.
        self.scale = (cfg.d_model // cfg.n_heads) ** -0.5 / math.sqrt(cfg.width_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            is_causal=True,
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied embeddings

        # GPT-2's init, std 0.02; μP shrinks the hidden matrices' std as 1/sqrt(width) (variance
        # ∝ 1/fan_in) and leaves the embeddings, which are also the readout, at 0.02.
        # (The readout is drawn last, as a Linear: under SP the RNG sequence is GPT-2's.)
        hidden_std = 0.02 / math.sqrt(cfg.width_mult)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                std = 0.02 if module is self.lm_head else hidden_std
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        # GPT-2: scale residual projections so the residual stream's variance stays put with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=hidden_std / math.sqrt(2 * cfg.n_layers))

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> TinyGPT:
        """The model a checkpoint holds (``model_config`` and ``model`` state), in eval mode."""
        model = cls(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        return model.eval()

    def hidden_matrices(self) -> list[nn.Parameter]:
        """μP's "matrix-like" parameters (both dimensions grow with width): every Linear weight
        but the readout, which is the input embedding (one dimension fixed by the vocabulary)."""
        return [
            m.weight for m in self.modules() if isinstance(m, nn.Linear) and m is not self.lm_head
        ]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        T = idx.size(1)
        if self.cfg.context < T:
            raise ValueError(f"sequence length {T} exceeds model.context={self.cfg.context}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if self.cfg.parametrization == "mup":
            # μP's readout multiplier (mup's MuSharedReadout): the tied embedding keeps its
            # width-independent init and LR as an input layer, and the logits shrink as 1/width.
            logits = logits / self.cfg.width_mult
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss

    # -- what scaling laws need -------------------------------------------------------------
    def num_parameters(self) -> int:
        """All parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def num_non_embedding_parameters(self) -> int:
        """N of scaling laws (Kaplan et al.): everything but the token and position embeddings."""
        return self.num_parameters() - self.wte.weight.numel() - self.wpe.weight.numel()

    def flops_per_token(self) -> int:
        """Training FLOPs per token, the C = 6ND of scaling laws: 6N for forward+backward, plus
        the attention scores over the causal half of the context (Kaplan et al.'s 6·n·T·d)."""
        c = self.cfg
        return 6 * self.num_non_embedding_parameters() + 6 * c.n_layers * c.context * c.d_model

    def palm_flops_per_token(self) -> int:
        """Training FLOPs per token as MFU counts them (PaLM, Chowdhery et al. 2022, App. B): the
        readout matmul included (the embedding lookup is free) and attention over the full
        context, 12·n·T·d, as nanoGPT's ``estimate_mfu``."""
        c = self.cfg
        n = self.num_non_embedding_parameters() + c.vocab_size * c.d_model
        return 6 * n + 12 * c.n_layers * c.d_model * c.context

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.cfg.context :])
            logits = logits[:, -1, :] / max(temperature, 1e-6)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx
