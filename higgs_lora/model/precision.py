"""The precision scheme of training: `resolve_precision` picks it, `Precision` applies it.

Where it is used: `train.recipe.train` resolves it, loads the base weights in `weights_dtype`, applies
`prepare` to the LoRA model and gives Trainer `training_arguments()`. check-alignment's fit and
gpu-check's train and alignment phases run through `train.recipe.train`, so they get that same code;
gpu-check's inference phase only loads its weights in `weights_dtype`; `bench/step.py`'s step
comparison calls `prepare` and `training_arguments` on `Precision("bf16", "cpu")` itself.

Inference (`infer`, `clone`, `eval`) does not use `Precision`: `load.resolve_dtype` picks bf16 weights
on CUDA (fp16 where the GPU lacks bf16) and it generates without autocast, as boson's serve engine
does; `load.load_model` applies `match_audio_embedding_dtype` for every caller.

`bf16` (the default on CUDA): frozen base weights stored in bf16, LoRA parameters (and everything
else that trains) and their AdamW state in fp32, the forward under bf16 autocast (the LoRA matmuls
too: `keep_adapter_input_dtype`), the loss in fp32
(`train.loss` upcasts the logits). On the released shape this was the fastest measured variant on
an H200 (0.45 s/step at batch 4, 55.5 GB, against 0.55 s / 63 GB for bf16 weights without
autocast), and fp32 adapters keep small LoRA updates from vanishing in bf16 rounding.

`fp16` (for GPUs without bf16): the same with fp16 weights, fp16 autocast and Trainer's loss
scaling (GradScaler, which needs the trainable parameters in fp32: they are).

`no`: everything in fp32, no autocast.

Why the audio embeddings are cast: CUDA autocast runs `torch.sum` in fp32, so
`HiggsAudioModel._embed_audio_ids` (a sum over codebook embeddings) returns fp32 under autocast,
and boson's `merge_input_ids_with_audio_features` index-puts that into the bf16 text embeddings:
"Index put requires the source and destination dtypes match" on the first training step. CPU
autocast keeps `sum` in bf16, so CPU runs never see it. `match_audio_embedding_dtype` casts the
audio embeddings back to the text embedding dtype without touching boson's files. Training's own
forward (`train.decoder`, which replaces that merge with a gather) casts them in the gather too.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from .peft_base import base_model

CHOICES = ("auto", "bf16", "fp16", "no")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}


@dataclass(frozen=True)
class Precision:
    name: str  # bf16 | fp16 | no
    device_type: str  # cuda | cpu

    @property
    def weights_dtype(self) -> torch.dtype:
        """The dtype the frozen base weights are stored in."""
        return _DTYPES[self.name]

    @staticmethod
    def words(name: str) -> str:
        """The --mixed_precision value as a reader understands it (the run settings keep the value)."""
        return {
            "no": "fp32 (no mixed precision)",
            "bf16": "bf16 mixed precision",
            "fp16": "fp16 mixed precision with loss scaling",
        }.get(name, str(name))

    def describe(self) -> str:
        """One line for the run's start summary."""
        return {
            "no": "fp32 throughout (no mixed precision)",
            "bf16": "bf16 (bf16 base weights + bf16 autocast; LoRA, optimizer and loss in fp32)",
            "fp16": "fp16 (fp16 base weights + fp16 autocast with loss scaling; LoRA, optimizer and loss in fp32)",
        }[self.name]

    def training_arguments(self) -> dict:
        """What Trainer needs: bf16=True / fp16=True make it run the forward under autocast (fp16 with GradScaler).

        With neither flag, TrainingArguments takes accelerate's ACCELERATE_MIXED_PRECISION from the
        environment, and any bf16/fp16 TrainingArguments built earlier in the process has set it
        there: an fp32 run after a bf16 one (gpu-check phases, check-alignment after training, tests)
        would silently run under bf16 autocast. So the choice is written there too.
        """
        os.environ["ACCELERATE_MIXED_PRECISION"] = self.name
        return {"bf16": self.name == "bf16", "fp16": self.name == "fp16"}

    def prepare(self, model):
        """Apply the scheme to a (PEFT-wrapped or bare) model whose base weights are already in `weights_dtype`."""
        match_audio_embedding_dtype(model)
        upcast_trainable(model)
        keep_adapter_input_dtype(model)
        return model


def resolve_precision(choice: str | None, device: str | torch.device) -> Precision:
    """`auto`/None: bf16 on CUDA (fp16 where the GPU lacks bf16), no on CPU. Raises ValueError when the device cannot do it."""
    device_type = torch.device(device).type
    choice = (choice or "auto").lower()
    if choice in ("fp32", "none", "false"):
        choice = "no"
    if choice not in CHOICES:
        raise ValueError(f"--mixed_precision {choice!r}: use one of {', '.join(CHOICES)}")
    cuda = device_type == "cuda"
    if choice == "auto":
        if not cuda:
            return Precision("no", device_type)
        return Precision("bf16" if _native_bf16() else "fp16", device_type)
    if choice == "bf16" and cuda and not _native_bf16():
        name = torch.cuda.get_device_name()
        raise ValueError(
            f"--mixed_precision bf16: this GPU ({name}) does not support bf16; use fp16 (with loss scaling) or no"
        )
    if choice == "fp16" and not cuda:
        raise ValueError(
            "--mixed_precision fp16 needs a CUDA GPU (fp16 loss scaling is not supported on CPU); use bf16 or no"
        )
    # bf16 on CPU is allowed when asked for explicitly (CPU autocast has bf16): slow, but it lets the
    # bf16 path be tested without a GPU.
    return Precision(choice, device_type)


def _native_bf16() -> bool:
    # Without the flag, torch >= 2.3 answers True on any GPU that can merely hold bf16 tensors
    # (V100, T4: emulated, slow), so `auto` would never pick fp16 where it is meant to.
    return torch.cuda.is_bf16_supported(including_emulation=False)


def match_audio_embedding_dtype(model) -> None:
    """Make `_embed_audio_ids` return the text embedding dtype (idempotent, instance-level, boson untouched)."""
    base = base_model(model)
    if getattr(base, "_higgs_lora_audio_embed_cast", False):
        return
    original = base._embed_audio_ids

    @functools.wraps(original)
    def embed_audio_ids(audio_ids, _original=original, _base=base):
        embed = _original(audio_ids)
        return embed.to(_base.embed_tokens.weight.dtype)

    base._embed_audio_ids = embed_audio_ids
    base._higgs_lora_audio_embed_cast = True


def upcast_trainable(model) -> int:
    """Trainable parameters (LoRA, modules_to_save copies) in fp32: optimizer state and updates in full precision."""
    n = 0
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
            n += 1
    return n


def keep_adapter_input_dtype(model) -> int:
    """Stop PEFT casting each adapted layer's input to the fp32 LoRA weights' dtype (returns the layers changed).

    Under autocast that cast is undone at once: the fp32 copy of every adapted layer's bf16 input is
    written, then autocast casts it back to bf16 for the matmul (q, k and v each cast the same input;
    about 29 GB written per micro-step at the released shape). The deliberate choice: the LoRA
    matmuls run in the autocast dtype like the rest of the forward, from fp32 master weights (autocast
    casts the small r×H weights, not the activations); gradients and AdamW stay fp32. Without
    autocast (`no`) the weights and inputs are both fp32 and nothing changes.
    Same effect as `peft.helpers.disable_input_dtype_casting`, kept on for the model's lifetime.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    n = 0
    for module in model.modules():
        if isinstance(module, BaseTunerLayer) and getattr(module, "cast_input_dtype_enabled", False):
            module.cast_input_dtype_enabled = False
            n += 1
    return n
