"""gpu-check's train phase: `train.recipe.train` on the random-weight model, timed step by step, with
tokens/s, peak memory and the MFU estimate (bench/flops.py)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from ..constants import FLOPS_PER_MULTIPLY_ADD, training_flops
from .flops import active_params_per_token
from .random_model import attention_implementation, load_check_model
from .timing import step_timer


def _audio_share(dataset) -> tuple[float, float]:
    """Mean sequence length the model sees per sample, and the share of it that is audio columns."""
    lengths = dataset.lengths()
    text = [int(dataset[i].input_ids.shape[0]) for i in range(len(dataset))]  # placeholders count as text here
    audio = [total - t for total, t in zip(lengths, text)]
    return sum(lengths) / len(lengths), sum(audio) / max(1, sum(lengths))


def train_phase(name: str, ctx: dict, data: str, batch_size: int, steps: int, checkpointing: bool) -> dict:
    from ..train.recipe import TrainConfig, train
    from ..train.step_estimate import TEXT_ROWS_PER_SAMPLE

    device, precision = ctx["device"], ctx["precision"]
    model = load_check_model(ctx["model_dir"], device, precision.weights_dtype)
    attention = attention_implementation(model)
    timer = step_timer(device)
    out = Path(ctx["workdir"]) / name
    # base_model names the folder the model was loaded from, so the commands train prints next can run.
    cfg = TrainConfig(
        train_data=data,
        output_dir=str(out),
        base_model=str(ctx["model_dir"]),
        audio_tokenizer="tiny",
        batch_size=batch_size,
        gradient_accumulation_steps=1,
        max_steps=steps,
        logging_steps=1,
        save_steps=10**9,
        lora_r=64,
        lora_alpha=128,
        use_gradient_checkpointing=checkpointing,
        dataloader_num_workers=ctx["workers"],
        report_to="none",
        learning_rate=5e-4,
        mixed_precision=precision.name,
        warmup_ratio=0.0,
    )
    t0 = time.time()
    train(cfg, model=model, tokenizer=ctx["tokenizer"], callbacks=[timer])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    warm = timer.times[2:] or timer.times  # the first steps include allocator and kernel warm-up
    step_s = statistics.median(warm)
    mean_len, audio_share = _audio_share(timer.dataset)
    tokens = mean_len * batch_size
    active = active_params_per_token(ctx["groups"], audio_share, min(1.0, TEXT_ROWS_PER_SAMPLE / mean_len))
    flops = training_flops(FLOPS_PER_MULTIPLY_ADD * active * tokens) / step_s
    peak = ctx["peak_flops"]
    row = {
        "phase": name,
        "batch": batch_size,
        "checkpointing": checkpointing,
        "steps": len(timer.times),
        "median_step_s": round(step_s, 4),
        "tokens_per_step": round(tokens),
        "tokens_per_s": round(tokens / step_s),
        "samples_per_s": round(batch_size / step_s, 2),
        "peak_memory_gb": timer.peak_gb,
        "longest_sample": max(timer.dataset.lengths()),
        "attention": attention,
        "audio_share": round(audio_share, 3),
        "active_params": round(active),
        "tflops": round(flops / 1e12, 2),
        "mfu": round(flops / peak, 4) if peak else None,
        "first_loss": rows[0].get("loss") if rows else None,
        "last_loss": rows[-1].get("loss") if rows else None,
        "wall_s": round(time.time() - t0, 1),
    }
    del model
    return row
