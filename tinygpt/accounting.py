"""What N and C count: the parameter and FLOP conventions of scaling laws, for one model.

Two 2024 papers showed that a small study's compute-optimal exponent moves with its bookkeeping:
Pearce & Song ("Reconciling Kaplan and Chinchilla Scaling Laws") — N without the embeddings biases
a toward Kaplan's 0.73 at small scale; Porian et al. ("Resolving Discrepancies in Compute-Optimal
Scaling of Language Models") — C without the readout's FLOPs does too. With a 1,024-token vocab
the tied embedding is 2.5x the rest of a d16 model, so each run records every convention and the
analysis says which one each law was fitted in (``source.parameters``, ``source.flops``).

Per token, forward and backward (a multiply-add is 2 FLOPs, the backward pass twice the forward):

- ``exact``: every matmul the model runs — the blocks' linear layers and the readout (the tied
  embedding used as the output layer, 6·V·d) — plus causal attention, 6·n_layers·T·d (QKᵀ and AV
  over the (T+1)/2 keys a query sees on average; a kernel that skips the masked half does this
  much). No bias, norm or embedding lookup: they are not matmuls. What a FLOP counter sees
  (tests/test_accounting.py checks it against ``torch.utils.flop_counter``).
- ``kaplan``: 6·N_non-embedding + 6·n_layers·T·d (Kaplan et al. 2020, their C = 6ND with the
  attention term): the readout left out.
- ``chinchilla``: 6·N_total (Hoffmann et al. 2022's 6ND), embeddings counted as if they were
  matmuls, attention left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch.nn as nn


class ParameterCount(str, Enum):
    """What N counts. The two give different compute-optimal allocations at small scale."""

    total = "total"  # Hoffmann et al. (2022): every parameter, the tied embedding once
    non_embedding = "non_embedding"  # Kaplan et al. (2020): without the token/position tables


class FlopCount(str, Enum):
    """What C counts per token (the module's docstring has the formulas)."""

    exact = "exact"  # every matmul, the readout included, and causal attention
    kaplan = "kaplan"  # 6·N_non-embedding + attention: no readout
    chinchilla = "chinchilla"  # 6·N_total


# In words, for reports and the study card.
PARAMETER_WORDS = {
    "total": "total parameters (the tied embedding once, position embedding included)",
    "non_embedding": "non-embedding parameters (Kaplan's count)",
}
FLOP_WORDS = {
    "exact": "exact training FLOPs (every matmul, the readout included, and causal attention)",
    "kaplan": "Kaplan's 6·N_non-embedding + attention (no readout)",
    "chinchilla": "Chinchilla's 6·N_total",
}
UNSTATED = "unstated"  # a CSV whose columns' conventions were not given


def value(convention: Any) -> str:
    """An enum member or its name, as the name."""
    return str(getattr(convention, "value", convention))


@dataclass(frozen=True)
class Counts:
    """One model's sizes under every convention."""

    total: int  # every parameter, the tied embedding once
    non_embedding: int  # without the token and position embeddings
    matmul_weights: int  # the weights of every matmul, the readout (V·d) included
    attention_per_token: int  # causal attention's training FLOPs per token, 6·n_layers·T·d

    @classmethod
    def of(cls, model: nn.Module) -> Counts:
        c = model.cfg
        linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
        return cls(
            total=model.num_parameters(),
            non_embedding=model.num_non_embedding_parameters(),
            matmul_weights=linear,  # lm_head is one of them: the readout, tied to wte
            attention_per_token=6 * c.n_layers * c.context * c.d_model,
        )

    def parameters(self, convention: ParameterCount | str) -> int:
        return {"total": self.total, "non_embedding": self.non_embedding}[value(convention)]

    def flops_per_token(self, convention: FlopCount | str) -> int:
        return {
            "exact": 6 * self.matmul_weights + self.attention_per_token,
            "kaplan": 6 * self.non_embedding + self.attention_per_token,
            "chinchilla": 6 * self.total,
        }[value(convention)]

    def metrics(self, tokens: int) -> dict[str, int]:
        """What a run records: both parameter counts, and FLOPs per token and C = FLOPs per token
        x tokens under every convention (``flops_per_token`` and ``flops`` are Kaplan's, the
        names every older store has)."""
        out = {"parameters": self.total, "non_embedding_parameters": self.non_embedding}
        for conv in FlopCount:
            fpt = self.flops_per_token(conv)
            out[f"flops_per_token_{conv.value}"] = fpt
            out[f"flops_{conv.value}"] = fpt * tokens
        out["flops_per_token"] = out["flops_per_token_kaplan"]
        out["flops"] = out["flops_kaplan"]
        return out


# The metric each convention is read from (tinygpt.scaling.table.runs); Kaplan's has the old
# names, so a store from before the conventions were recorded reads under source.flops=kaplan.
FLOP_METRICS = {"exact": "flops_exact", "kaplan": "flops", "chinchilla": "flops_chinchilla"}
FLOP_PER_TOKEN_METRICS = {
    "exact": "flops_per_token_exact",
    "kaplan": "flops_per_token",
    "chinchilla": "flops_per_token_chinchilla",
}
PARAMETER_METRICS = {"total": "parameters", "non_embedding": "non_embedding_parameters"}
