"""What a run will do (printed before its first step) and what it did (printed at its end), by rank 0 only.

The start block reads the schedule from Trainer itself at `on_train_begin` (steps, epochs, processes),
so it cannot disagree with what Trainer then does.
"""

from __future__ import annotations

import logging
import math
import shlex
from dataclasses import dataclass, field

from transformers import TrainerCallback

from ..ranks import is_rank_zero  # noqa: F401  (recipe.py imports it from here)

RULE = "=" * 72


@dataclass
class RunFacts:
    """What the recipe knows before training: data, model, settings (filled in by recipe.train)."""

    train_data: str
    output_dir: str
    samples: int
    skipped: int = 0
    target_hours: float = 0.0
    reference_hours: float = 0.0
    speakers: int = 0
    eval_samples: int = 0
    eval_how: str = ""
    eval_steps: int = 0
    precision: str = "fp32"
    gradient_checkpointing: int = 0  # decoder layers checkpointed (the first k; 0: off)
    decoder_layers: int = 0
    save_steps: int = 500
    save_total_limit: int | None = None
    lora: str = ""
    trainable: int = 0
    total: int = 0
    consistency_loss_weight: float = 0.0
    backend: str = ""  # "DeepSpeed CONFIG" / "FSDP full_shard auto_wrap" / "" for plain DDP
    max_tokens_per_batch: int = 0  # >0: length-aware batches, per_device (--batch_size) is not used
    lines: list[str] = field(default_factory=list)  # extra lines other parts may add


def audio_hours(dataset, samples, frames_per_second: float) -> tuple[float, float, int]:
    """(target hours, reference hours, distinct named speakers) from the code cache's frame counts (no codes read)."""
    target = sum(dataset.frames(s.target_audio) for s in samples) / frames_per_second / 3600
    reference = sum(dataset.frames(p) for p in {s.ref_audio for s in samples}) / frames_per_second / 3600
    return target, reference, len({s.speaker for s in samples if s.speaker is not None})


def steps_per_epoch(batches_per_process: int, accumulation: int) -> int:
    """Optimizer steps per epoch as transformers 4.46 counts them for `max_steps` (floor, at least 1)."""
    return max(batches_per_process // accumulation, 1)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _hours(h: float) -> str:
    return f"{h:.2f} h" if h >= 0.1 else f"{h * 60:.1f} min"


def _checkpointing(layers: int, of: int) -> str:
    if not layers:
        return "off"
    return (
        f"on ({'all ' if layers >= of else ''}{layers}{'' if layers >= of else f' of {of}'} decoder layers)"
        if of
        else "on"
    )


def start_block(
    facts: RunFacts,
    *,
    per_device: int,
    accumulation: int,
    processes: int,
    steps_epoch: int,
    max_steps: int,
    resumed_at: int = 0,
    learning_rate: float = 0.0,
) -> str:
    effective = per_device * accumulation * processes
    epochs = max_steps / steps_epoch
    speakers = _n(facts.speakers, "speaker") if facts.speakers else "speakers not named"
    rows = [
        # the training part only: held-out samples have their own row
        ("data", f"{_n(facts.samples, 'sample')} to train on, {facts.skipped} skipped  ({facts.train_data})"),
        (
            "audio",
            f"{_hours(facts.target_hours)} of target audio, {_hours(facts.reference_hours)} of reference "
            f"audio, {speakers}",
        ),
    ]
    if facts.eval_samples:
        share = 100 * facts.eval_samples / (facts.eval_samples + facts.samples)
        rows.append(
            (
                "held out",
                f"{_n(facts.eval_samples, 'sample')} ({share:.0f}%), eval_loss every {facts.eval_steps} steps"
                + (f"; {facts.eval_how}" if facts.eval_how else ""),
            )
        )
    rows += [
        (
            "model",
            f"{facts.lora}; trainable {facts.trainable:,} of {facts.total:,} parameters "
            f"({100 * facts.trainable / max(facts.total, 1):.2f}%)",
        ),
        (
            "batch",
            f"{per_device} per device x {accumulation} accumulation x {processes} "
            f"process{'es' if processes != 1 else ''} = {effective} samples per step"
            if not facts.max_tokens_per_batch
            else f"up to {facts.max_tokens_per_batch:,} padded tokens per device (length-aware; --batch_size ignored) x "
            f"{accumulation} accumulation x {processes} process{'es' if processes != 1 else ''} per step",
        ),
        (
            "schedule",
            f"{_n(steps_epoch, 'step')} per epoch; {_n(max_steps, 'step')} = {epochs:.2f} epochs; "
            f"peak lr {learning_rate:g}, cosine",
        ),
        ("precision", facts.precision + (f"; {facts.backend}" if facts.backend else "")),
        (
            "checkpoints",
            (f"every {facts.save_steps} steps" if facts.save_steps < max_steps else "at the last step only")
            + ", keeping "
            f"{facts.save_total_limit if facts.save_total_limit else 'all'}; activation checkpointing "
            f"{_checkpointing(facts.gradient_checkpointing, facts.decoder_layers)}",
        ),
    ]
    if facts.consistency_loss_weight:
        rows.append(
            (
                "consistency",
                f"weight {facts.consistency_loss_weight:g}: one extra forward of the base "
                "model (adapter off, no grad) per micro-batch",
            )
        )
    rows.append(("output", f"{facts.output_dir}  (adapter, checkpoint-*/, metrics.jsonl, runs/ for TensorBoard)"))
    if resumed_at:
        rows.append(("resuming", f"at step {resumed_at} of {max_steps}"))
    rows += [("", line) for line in facts.lines]
    width = max(len(k) for k, _ in rows)
    return "\n".join([RULE, "higgs-lora train", *(f"  {k:<{width}}  {v}" for k, v in rows), RULE])


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def _final_and_best(history: list[dict], key: str) -> str | None:
    points = [(r["step"], r[key]) for r in history if key in r and math.isfinite(r[key])]
    if not points:
        return None
    best_step, best = min(points, key=lambda p: p[1])
    return f"final {points[-1][1]:.4f}, best {best:.4f} (step {best_step})"


def end_block(
    history: list[dict],
    *,
    steps: int,
    seconds: float,
    output_dir: str,
    base_model: str,
    audio_tokenizer: str,
    data_for_infer: str,
    trained_on: bool = False,
) -> str:
    """The closing summary: loss (final and best), time, where the adapter is, and what to run next.
    `trained_on`: `data_for_infer` is the training data (no held-out set), which the score line says."""
    rows = [("steps", f"{steps} in {_duration(seconds)}")]
    for key, label in (("loss", "loss"), ("eval_loss", "eval_loss")):
        text = _final_and_best(history, key)
        if text:
            rows.append((label, text))
    out = shlex.quote(str(output_dir))
    rows.append(("adapter", f"{output_dir}  (adapter_model.safetensors + adapter_config.json)"))
    base = shlex.quote(base_model)
    from ..entry_point import runnable_command

    cli = runnable_command()
    merge = (
        f"{cli} merge --base_model {base} --lora_path {out} --output_path {shlex.quote(str(output_dir) + '-merged')}"
    )
    infer = (
        f"{cli} infer --chatml_file {shlex.quote(str(data_for_infer))} --output_dir "
        f"{shlex.quote(str(output_dir) + '/samples')} --model_path {base} --lora_path {out} "
        f"--audio_tokenizer {shlex.quote(audio_tokenizer)}"
    )
    evaluate = (
        f"{cli} eval --data {shlex.quote(str(data_for_infer))} --model_path {base} --lora_path {out} "
        f"--audio_tokenizer {shlex.quote(audio_tokenizer)} --output_dir {shlex.quote(str(output_dir) + '/eval')}"
    )
    width = max(len(k) for k, _ in rows + [("next", "")])
    lines = [
        RULE,
        "higgs-lora train: done",
        *(f"  {k:<{width}}  {v}" for k, v in rows),
        f"  {'next':<{width}}  listen:  {infer}",
        f"  {'':<{width}}  merge:   {merge}",
        f"  {'':<{width}}  score:   {evaluate}",
    ]
    if trained_on:
        lines.append(
            f"  {'':<{width}}           (scores the training samples; --eval_split or --eval_data holds "
            "some out for an honest score)"
        )
    lines.append(RULE)
    return "\n".join(lines)


class StartSummaryCallback(TrainerCallback):
    """Prints `start_block` once, on the main process, just before the first step (or the resumed one)."""

    def __init__(self, facts: RunFacts, printer=print):
        self.facts = facts
        self.printer = printer

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if not state.is_world_process_zero:
            return
        batches = len(train_dataloader) if train_dataloader is not None else 1
        steps_epoch = steps_per_epoch(batches, args.gradient_accumulation_steps)
        self.printer(
            start_block(
                self.facts,
                per_device=args.per_device_train_batch_size,
                accumulation=args.gradient_accumulation_steps,
                processes=args.world_size,
                steps_epoch=steps_epoch,
                max_steps=state.max_steps,
                resumed_at=state.global_step,
                learning_rate=args.learning_rate,
            ),
            flush=True,
        )


# Notices every run prints that say nothing about this run: --max_steps is how the recipe schedules
# (the start block shows the epochs it makes), and PEFT writes the adapter card that README.md replaces.
KNOWN_NOTICES = {
    "transformers.trainer": "max_steps is given, it will override any value given in num_train_epochs",
    "huggingface_hub.repocard": "Repo card metadata block was not found",
}


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_known_notices() -> None:
    """Drop exactly the KNOWN_NOTICES (other messages of those loggers still show); idempotent."""
    for name, prefix in KNOWN_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropNotice(prefix))
