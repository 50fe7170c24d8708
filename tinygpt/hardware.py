"""Device, precision and compile resolution from the ``hardware`` group."""

from __future__ import annotations

import contextlib
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch.nn.attention import SDPBackend, sdpa_kernel

from tinygpt.config import Attention, Device, Precision
from tinygpt.errors import TinyGPTError

log = logging.getLogger("tinygpt")

_BACKENDS = {
    Attention.flash: SDPBackend.FLASH_ATTENTION,
    Attention.cudnn: SDPBackend.CUDNN_ATTENTION,
    Attention.efficient: SDPBackend.EFFICIENT_ATTENTION,
    Attention.math: SDPBackend.MATH,
}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None
    compile: bool
    compile_mode: str | None = None
    attention: Attention = Attention.auto

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def compiled(self, model: torch.nn.Module) -> Callable[..., Any]:
        """``torch.compile(model)`` whose compiled code knows the attention kernel it was traced
        with. The kernel is chosen when the graph is traced, and neither the in-process cache
        nor the on-disk FX graph cache keys on that choice: without the tag a run would reuse a
        graph traced under another ``hardware.attention`` (a sweep over it, in one process, or
        a rerun over a warm cache) and silently keep the old kernel."""
        tag = f"tinygpt-sdpa-{self.attention.value}"
        if torch.compiler.config.cache_key_tag != tag:
            torch.compiler.config.cache_key_tag = tag
            torch.compiler.reset()
        return torch.compile(model, mode=self.compile_mode)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision and the preferred attention kernel, around forward passes."""
        stack = contextlib.ExitStack()
        if self.autocast_dtype is not None:
            stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
        if self.attention is not Attention.auto:
            # The chosen kernel, and the math one where it cannot run (cuDNN's on CPU, flash's on
            # head sizes over 256): a preference that never leaves a shape without a kernel.
            backends = list(dict.fromkeys([_BACKENDS[self.attention], SDPBackend.MATH]))
            stack.enter_context(sdpa_kernel(backends, set_priority=True))
        return stack


def _cpu_caps() -> dict:
    return dict(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else {}


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8481C"), as cpuinfo reads it."""
    return _cpu_caps().get("cpu_name") or platform.processor() or platform.machine()


def cpu_bf16_units() -> list[str]:
    """The CPU's native bf16 instructions (AMX tiles, AVX512-BF16, Arm's BF16); empty where bf16
    is emulated in fp32 units, as on AVX2-only CPUs."""
    caps = _cpu_caps()
    return [n for n in ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16") if caps.get(n)]


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def check_device(cfg: DictConfig) -> None:
    """That ``hardware.device`` exists here, and has a GPU for each of ``hardware.devices``
    ranks where it is CUDA: checked before any rank is started."""
    device = _device(cfg)
    if device is Device.cuda and torch.cuda.device_count() < cfg.devices:
        raise TinyGPTError(
            f"hardware.devices={cfg.devices} but torch sees {torch.cuda.device_count()} CUDA "
            f"device(s): use hardware.devices={torch.cuda.device_count()} or fewer"
        )


def _device(cfg: DictConfig) -> Device:
    device = Device(cfg.device)
    if device is Device.auto:
        device = (
            Device.cuda
            if torch.cuda.is_available()
            else Device.mps
            if _mps_available()
            else Device.cpu
        )
    if device is Device.cuda and not torch.cuda.is_available():
        raise TinyGPTError(
            "hardware=cuda but torch sees no CUDA device (torch.cuda.is_available() is False): "
            "use hardware=cpu or hardware=auto, or install a CUDA build of torch"
        )
    if device is Device.mps and not _mps_available():
        raise TinyGPTError(
            "hardware=mps but the MPS backend is not available: use hardware=cpu or hardware=auto"
        )
    return device


def resolve(cfg: DictConfig, local_rank: int = 0) -> Runtime:
    """The device, precision and compile settings; ``local_rank`` picks this rank's GPU."""
    device = _device(cfg)
    precision = Precision(cfg.precision)
    if precision is Precision.auto:
        precision = Precision.bf16 if device is Device.cuda else Precision.fp32
    if device is Device.cpu and precision is Precision.bf16 and not cpu_bf16_units():
        log.warning(
            "hardware.precision=bf16 on a CPU without native bf16 (%s: no AMX or AVX512-BF16) is "
            "emulated and slow (0.06x fp32 for d128 on an AVX2-only AMD EPYC, "
            "benchmarks/RESULTS.md): hardware.precision=fp32 is faster here",
            cpu_name(),
        )
    if device is Device.cuda:
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    where = torch.device(device.value)
    if device is Device.cuda and local_rank:
        where = torch.device("cuda", local_rank)
        torch.cuda.set_device(where)
    return Runtime(
        device=where,
        autocast_dtype=torch.bfloat16 if precision is Precision.bf16 else None,
        compile=cfg.compile,
        compile_mode=cfg.compile_mode,
        attention=Attention(cfg.attention),
    )
