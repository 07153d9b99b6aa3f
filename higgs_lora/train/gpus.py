"""The GPUs people train on: memory and dense bf16 peak (constants.GPU_PEAK_FLOPS), for `higgs-lora plan`
and its time estimate.

memory_gib is the total a card reports (torch.cuda.get_device_properties().total_memory / 2^30);
H100 and H200 were read on those cards, the others are the vendors' nominal sizes less what the
driver keeps (about 1.5 %), so a card may report slightly more or less: `--gpu_memory_gb` (or
HIGGS_LORA_GPU_MEMORY_GB for `train`) plans for the exact figure. peak_flops is the vendor's dense
bf16 tensor peak with fp32 accumulation (what torch uses), without sparsity. The planner's MFU was
measured on an H200 only; on other cards the time estimate is that H200 figure scaled by peak FLOP/s.
"""

from __future__ import annotations

from ..constants import GPU_PEAK_FLOPS as PEAK

GPUS = {
    "a100-40gb": {"memory_gib": 39.4, "peak_flops": PEAK["A100"], "name": "NVIDIA A100 40GB"},
    "a100-80gb": {"memory_gib": 79.1, "peak_flops": PEAK["A100"], "name": "NVIDIA A100 80GB"},
    "l40s": {"memory_gib": 44.4, "peak_flops": PEAK["L40S"], "name": "NVIDIA L40S 48GB"},
    "rtx4090": {"memory_gib": 23.6, "peak_flops": PEAK["RTX 4090"], "name": "NVIDIA GeForce RTX 4090 24GB"},
    "rtx5090": {"memory_gib": 31.4, "peak_flops": PEAK["RTX 5090"], "name": "NVIDIA GeForce RTX 5090 32GB"},
    "h100": {"memory_gib": 79.2, "peak_flops": PEAK["H100"], "name": "NVIDIA H100 80GB"},
    "h200": {"memory_gib": 139.8, "peak_flops": PEAK["H200"], "name": "NVIDIA H200 141GB"},
}


def gpu_with_memory(gpu: str, memory_gb: float | None) -> dict:
    """The card's entry, with its memory replaced by `memory_gb` (GiB) when given: a shared or unlisted card."""
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)} (or --gpu_memory_gb for any card)")
    spec = dict(GPUS[gpu])
    if memory_gb is not None:
        if memory_gb <= 0:
            raise ValueError(f"--gpu_memory_gb must be positive, got {memory_gb}")
        spec.update(memory_gib=memory_gb, name=f"{memory_gb:g} GiB card (peak FLOP/s of the {spec['name']})")
    return spec


def gpu_spec(gpu: str | dict) -> dict:
    """A card by name, or a spec dict as given (gpu_with_memory: --gpu_memory_gb)."""
    if isinstance(gpu, dict):
        return gpu
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}")
    return GPUS[gpu]
