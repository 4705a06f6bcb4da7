"""Where and how tensors run: device choice, autocast, and the CUDA back-end settings training and benchmarks use.

A small module of its own so that training, evaluation, prediction and the benchmark share one answer to "which
device, which precision, which kernels" without importing each other.
"""

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from .errors import ConfigError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA without one is a
    :class:`ConfigError`."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA device is available")
    return device


def autocast_for(amp: str, device: torch.device):
    """The autocast context of ``train.amp`` (``none``, ``bf16``, ``fp16``) on ``device``; fp16 needs CUDA."""
    if amp == "none":
        return nullcontext()
    if amp not in AMP_DTYPES:
        raise ConfigError(f"train.amp must be one of none, bf16, fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; on CPU use train.amp=bf16 or none")
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


@dataclass(frozen=True)
class BackendSettings:
    cudnn_benchmark: bool
    matmul_precision: str  # torch.set_float32_matmul_precision: highest | high (TF32) | medium
    cudnn_tf32: bool

    def describe(self) -> str:
        return (f"cudnn.benchmark={self.cudnn_benchmark}, float32 matmul precision {self.matmul_precision}, "
                f"cudnn TF32={self.cudnn_tf32}")


def configure_cuda(benchmark: bool = True, tf32: bool = True) -> BackendSettings:
    """cuDNN autotuning (worth it for the fixed crop size of training and benchmarks) and TF32 for float32
    matrix products and convolutions on Ampere and newer; returns the settings now in force. Does nothing to the
    CPU path; calling it without CUDA only records the settings."""
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return current_backend_settings()


@contextmanager
def exact_float32():
    """TF32 off for float32 convolutions and matrix products inside the block, the settings before it restored after
    (a no-op on the CPU): for numerical checks that compare float32 results at a 1e-4 tolerance, which TF32's 10-bit
    mantissa exceeds (a BatchNorm fold checked under TF32 on an H200 differed by 1.2e-3 of the logits' range)."""
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


@contextmanager
def preserved_backend_settings():
    """cuDNN autotuning and the TF32 switches as they were before the block (``configure_cuda`` inside it changes
    them for the process: training and benchmarks restore the caller's settings when they return)."""
    saved = current_backend_settings()
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved.cudnn_benchmark
        torch.backends.cudnn.allow_tf32 = saved.cudnn_tf32
        torch.set_float32_matmul_precision(saved.matmul_precision)


def current_backend_settings() -> BackendSettings:
    return BackendSettings(torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision(),
                           torch.backends.cudnn.allow_tf32)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
