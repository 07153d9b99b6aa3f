"""FLOPs and time of one training micro-step, from the model's shape (torch-free).

Matrix products only, 2 FLOPs per multiply-add (the convention of `constants.training_flops`):
    forward  = tokens * (2*N_decoder + 4*L*layers*heads*head_dim) + head_rows * 2*head
    backward = 2 * forward (input gradients through the frozen base + the small LoRA weight gradients)
    each checkpointed decoder layer runs its forward once more (the head does not).
N_decoder (`model_shape.decoder_params_per_token`): attention, one FFN per layer and their LoRA
branches; `head` (`model_shape.text_head_params`) is the text head and its LoRA, applied to TEXT_ROWS_PER_SAMPLE rows per sample
(`train.heads`), or to every position with `full_logits=True` (upstream's step). The audio head and
the embeddings are not counted. tests/train/test_step_estimate.py compares the forward with torch's
FlopCounterMode on a small real HiggsAudioModel.

Time = FLOPs / (the card's bf16 peak x MFU), one GPU; DEFAULT_MFU comes from the one H200 step time
measured under the current precision scheme (train/calibration.py). DDP's all-reduce of the LoRA
gradients is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from .calibration import DEFAULT_MFU
from .gpus import gpu_spec
from .model_shape import ModelShape, decoder_params_per_token, text_head_params

# Text targets per voice-cloning sample in the shifted loss: <|audio_out_bos|>, <|audio_eos|> and
# <|eot_id|> (the rows train.heads applies the text head to, whose logits the memory estimate counts too;
# tests/train/test_plan_step.py counts them).
TEXT_ROWS_PER_SAMPLE = 3


@dataclass(frozen=True)
class StepEstimate:
    flops: float  # per micro-batch, one GPU
    seconds: float
    tokens_per_s: float  # padded positions per second, one GPU
    samples_per_s: float


def estimate_step(
    shape: ModelShape,
    batch_size: int,
    seq_len: int,
    lora_r: int = 64,
    targets: list[str] | None = None,
    checkpointing: bool | int = False,
    gpu: str = "h200",
    mfu: float = DEFAULT_MFU,
    full_logits: bool = False,
) -> StepEstimate:
    """`checkpointing`: True (every layer), False or a layer count; each checkpointed layer runs its forward twice.
    `full_logits`: the text head at every position (upstream's step) instead of the labelled rows."""
    if not 0 < mfu <= 1:
        raise ValueError(f"MFU must be in (0, 1], got {mfu}")
    tokens = batch_size * seq_len
    head = text_head_params(shape, lora_r, targets)
    head_rows = tokens if full_logits else min(tokens, batch_size * TEXT_ROWS_PER_SAMPLE)
    attention = 4 * seq_len * shape.layers * shape.heads * shape.head_dim
    layers_forward = tokens * (2 * decoder_params_per_token(shape, lora_r, targets) + attention)
    forward = layers_forward + head_rows * 2 * head
    recomputed = shape.layers if checkpointing is True else int(checkpointing)
    flops = 3 * forward + layers_forward * recomputed / shape.layers
    seconds = flops / (gpu_spec(gpu)["peak_flops"] * mfu)
    return StepEstimate(flops, seconds, tokens / seconds, batch_size / seconds)
