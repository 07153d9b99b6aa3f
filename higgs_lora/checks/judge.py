"""Judging a fitted model through the inference path, and the `--lora_path` adapter check.

Teacher-forced agreement: the model's argmax audio codes at every target position of the inference inputs
continued by the target, compared with the target codes. The adapter check compares a run's adapter on and
off on the run's own samples, and against how often its argmax repeats the frame it was given (what a model
trained on unshifted labels learns).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..data.collator import batch_to_inputs, make_chatml_sample
from ..data.sample import CloneSample, inference_prompt
from ..infer.inputs import InferenceInputs
from .result import CheckResult


def teacher_forced_inputs(
    infer_inputs: InferenceInputs, sample: CloneSample, target: np.ndarray, codes: list[np.ndarray] | None = None
) -> dict:
    """The inference prompt (as `InferenceInputs` builds it) continued by the target audio stream,
    one <|AUDIO_OUT|> placeholder for its columns, collated by the inference collator."""
    prompt_ids, _ = inference_prompt(sample, infer_inputs.tokenizer)
    if codes is None:
        codes = infer_inputs.reference_codes(sample)  # the inference side's own codec call
    audio_out = infer_inputs.tokenizer.convert_tokens_to_ids("<|AUDIO_OUT|>")
    chatml = make_chatml_sample(prompt_ids + [audio_out], None, list(codes) + [target])
    return batch_to_inputs(infer_inputs.collator([chatml]))


def stream_target_mask(stream: torch.Tensor, bos_id: int, eos_id: int) -> torch.Tensor:
    """Columns a model must predict in a delay-patterned stream: real codes and each codebook's first
    EOS (the stream-BOS triangle and the EOS padding after the first EOS are forced at generation)."""
    is_eos = stream == eos_id
    after_first_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return (stream != bos_id) & ~after_first_eos


@torch.no_grad()
def teacher_forced_agreement(model, inputs: dict, config) -> dict:
    """Argmax audio codes at every target position of the last audio stream vs the stream itself.

    Without autocast, in the weights' own dtypes, as `infer` runs the model (training's autocast is
    the fit's business; the judge sees the numerics users get)."""
    device = next(model.parameters()).device
    model.eval()
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    out = model(**batch, use_cache=False)
    start = int(batch["audio_out_ids_start"][-1])
    stream = batch["audio_out_ids"][:, start:]
    predicted = out.audio_logits[start:-1].argmax(-1).T  # row k predicts column k + 1
    targets = stream[:, 1:]
    mask = stream_target_mask(targets, config.audio_stream_bos_id, config.audio_stream_eos_id)
    agree = (predicted == targets) & mask
    n = int(mask.sum())
    # The same argmax against the column it was given: what a model trained without the shift learns.
    copies = (predicted == stream[:, :-1]) & mask
    return {
        "agreement": float(agree.sum()) / n if n else 0.0,
        "positions": n,
        "wrong": n - int(agree.sum()),
        "copy_agreement": float(copies.sum()) / n if n else 0.0,
    }


@contextlib.contextmanager
def as_inference_runs(model):
    """The model's own forward for the judge's duration. Under bf16/fp16 Trainer (accelerate) replaces
    the trained module's `forward` with an autocast wrapper; `infer` loads the weights fresh and runs
    them without one, so the judge must too (with the wrapper, the static cache, allocated in the
    weights' dtype, received bf16 keys: every CUDA run of the check crashed); and PEFT's input cast
    back on, as infer loads the adapter."""
    patched = [
        m
        for m in {id(m): m for m in (model, getattr(model, "get_base_model", lambda: model)())}.values()
        if "_original_forward" in vars(m) and "forward" in vars(m)
    ]
    wrappers = [vars(m)["forward"] for m in patched]
    # Training's precision scheme stops PEFT casting an adapted layer's input to the LoRA weights' dtype
    # (autocast does it); infer loads the adapter with PEFT's cast on, so without autocast the judge needs it.
    uncast = [m for m in model.modules() if getattr(m, "cast_input_dtype_enabled", None) is False]
    for m in patched:
        m.forward = m._original_forward
    for m in uncast:
        m.cast_input_dtype_enabled = True
    try:
        yield
    finally:
        for m, wrapper in zip(patched, wrappers):
            m.forward = wrapper
        for m in uncast:
            m.cast_input_dtype_enabled = False


def check_adapter(dataset, model, tokenizer, codec, infer_samples: list[CloneSample], log=print) -> CheckResult:
    """The run's adapter on the run's samples (no fit): teacher-forced agreement on the inference inputs
    with the adapter on must beat the same weights with it off (PEFT's `disable_adapter`)."""
    config = model.config
    infer_inputs = InferenceInputs(tokenizer, codec, config)
    rows = []
    for index, sample in enumerate(infer_samples):
        inputs = teacher_forced_inputs(infer_inputs, sample, dataset.codes(sample.target_audio))
        with_adapter = teacher_forced_agreement(model, inputs, config)
        with model.disable_adapter():
            base = teacher_forced_agreement(model, inputs, config)
        rows.append(
            {
                "index": index,
                "positions": with_adapter["positions"],
                "agreement": round(with_adapter["agreement"], 5),
                "agreement_adapter_off": round(base["agreement"], 5),
                "copy_agreement": round(with_adapter["copy_agreement"], 5),
            }
        )
    positions = sum(r["positions"] for r in rows)

    def mean(key):
        return sum(r[key] * r["positions"] for r in rows) / positions if positions else 0.0

    agreement, off, copy = mean("agreement"), mean("agreement_adapter_off"), mean("copy_agreement")
    # Two ways to fail: the adapter does not help inference's next-frame prediction, or it predicts the
    # frame it was given better than the next one (trained on unshifted labels).
    ok = positions > 0 and agreement > off and agreement > copy
    summary = (
        f"teacher-forced agreement on the run's {len(rows)} samples through the inference inputs: "
        f"{agreement:.2%} with the adapter, {off:.2%} without; its argmax repeats the input frame "
        f"{copy:.2%} of the time" + ("" if ok else " (the adapter does NOT learn what inference asks of it)")
    )
    return CheckResult(
        "adapter_teacher_forced",
        ok,
        summary,
        {
            "agreement": round(agreement, 5),
            "agreement_adapter_off": round(off, 5),
            "copy_agreement": round(copy, 5),
            "samples": rows,
        },
    )
