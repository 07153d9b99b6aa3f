"""One rule for every loop that generates sample after sample (`infer`, `eval`, the training-time
sample callback): a sample error skips that sample; a device error stops the run.

A sample error is the sample's fault (unreadable clip, empty text, a codec that cannot read the
file): the next sample is unaffected. A device error is the accelerator's: after a CUDA
device-side assert or an illegal memory access the CUDA context is unusable and every later call
fails or returns garbage; after an out-of-memory error the same oversized call would fail again and
the allocator is fragmented. Carrying on after one would turn a single message into hundreds of
"skipped" lines, or worse, into output that looks fine and is not. So those stop the run, with one
line, after what was already done is written down.
"""

from __future__ import annotations

# sysexits EX_OSERR: the system (here the accelerator), not the input, failed.
EXIT_DEVICE_ERROR = 71

# Messages torch (and the CUDA/cuBLAS/cuDNN/NCCL libraries under it) raise as plain RuntimeError
# when the device fails; matched case-insensitively. Older torch raises CUDA errors as RuntimeError,
# newer as torch.AcceleratorError (a RuntimeError too); out of memory has its own class.
DEVICE_ERROR_MARKERS = (
    "cuda error",
    "device-side assert",
    "illegal memory access",
    "illegal instruction",
    "misaligned address",
    "unspecified launch failure",
    "out of memory",
    "cublas_status",
    "cudnn_status",
    "cudnn error",
    "nccl error",
    "hip error",
    "cuda driver error",
    "device not ready",
    "ecc error",
)


def is_device_error(err: BaseException) -> bool:
    """True when `err` means the device can no longer be trusted (see the module docstring)."""
    import torch

    if isinstance(err, DeviceError):
        return True
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(err, accelerator_error):
        return True
    if isinstance(err, RuntimeError):
        text = str(err).lower()
        return any(marker in text for marker in DEVICE_ERROR_MARKERS)
    return False


def first_line(err: BaseException) -> str:
    """`Type: first line of the message` (CUDA messages run to a dozen lines of advice)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


class DeviceError(RuntimeError):
    """A device failure while generating: `where` names the sample, `done` what was finished before it.
    Raised `from` the original error, so --debug shows where it came from."""

    def __init__(self, where: str, err: BaseException, done: str = "", saved: str | None = None):
        self.where, self.original, self.saved = where, err, saved
        advice = (
            "lower --max_new_tokens / --chunk_max_chars or free GPU memory"
            if _is_oom(err)
            else "the GPU state is lost; rerun (CUDA_LAUNCH_BLOCKING=1 names the failing op)"
        )
        parts = [f"device error at {where}: {first_line(err)}", "stopped the run", advice]
        if done:
            parts.append(done)
        if saved:
            parts.append(f"what was done is in {saved}")
        super().__init__("; ".join(parts))


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(err).lower()
