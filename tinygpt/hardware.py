"""Device, precision and compile resolution from the ``hardware`` group."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from tinygpt.config import Device, Precision
from tinygpt.errors import TinyGPTError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None
    compile: bool
    compile_mode: str | None = None

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve(cfg: DictConfig) -> Runtime:
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
    precision = Precision(cfg.precision)
    if precision is Precision.auto:
        precision = Precision.bf16 if device is Device.cuda else Precision.fp32
    if device is Device.cuda:
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Runtime(
        device=torch.device(device.value),
        autocast_dtype=torch.bfloat16 if precision is Precision.bf16 else None,
        compile=cfg.compile,
        compile_mode=cfg.compile_mode,
    )
