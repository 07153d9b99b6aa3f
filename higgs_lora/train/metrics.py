"""Training metrics a person can trust: loss parts kept on the device between logs, throughput, memory,
OUTPUT_DIR/metrics.jsonl (fresh on a new run, continued on resume) and compact console lines.

Only `LossMeter.summary()` reads device values back to the host, once per log; every micro-step just
adds detached tensors, so a GPU never stalls on the host between logs.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

# Console lines keep these (and their order); everything else goes to metrics.jsonl and TensorBoard.
CONSOLE_KEYS = (
    ("loss", "loss", ".4f"),
    ("text_loss", "text", ".4f"),
    ("audio_loss", "audio", ".4f"),
    ("consistency_loss", "consistency", ".4f"),
    ("learning_rate", "lr", ".2e"),
    ("grad_norm", "grad", ".3f"),
    ("tokens_per_second", "tok/s", ",.0f"),
    ("memory_gb", "mem GB", ".2f"),
)


def batch_tokens(inputs: dict) -> torch.Tensor:
    """Non-pad tokens the model sees in a collated batch (0-d tensor, on the batch's device).

    Each audio segment's placeholder token is replaced by its columns, as in `VoiceCloningDataset.lengths`.
    """
    tokens = inputs["attention_mask"].sum()
    for ids, starts in (("audio_in_ids", "audio_in_ids_start"), ("audio_out_ids", "audio_out_ids_start")):
        if inputs.get(ids) is not None and inputs[ids].numel():
            tokens = tokens + inputs[ids].shape[1] - inputs[starts].numel()
    return tokens


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class LossMeter:
    """Sums loss parts as detached device tensors; `summary()` averages them (over all processes)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: torch.Tensor | None = None  # [text, audio, consistency, cb0..cbN-1]
        self.weight = 0.0
        self.samples = 0
        self.tokens: torch.Tensor | int = 0
        self.started = time.perf_counter()

    def add(self, parts, consistency: torch.Tensor | None, inputs: dict, weight: float = 1.0) -> None:
        zero = parts.text_loss.new_zeros(1)
        row = (
            torch.cat(
                [
                    parts.text_loss.reshape(1).float(),
                    parts.audio_loss.reshape(1).float().to(zero.device),
                    zero if consistency is None else consistency.detach().reshape(1).float(),
                    parts.codebook_losses.float().to(zero.device),
                ]
            )
            * weight
        )
        self.sums = row if self.sums is None else self.sums + row
        self.weight += weight
        self.samples += int(inputs["input_ids"].shape[0])
        self.tokens = self.tokens + batch_tokens(inputs)

    def __bool__(self) -> bool:
        return self.sums is not None

    @contextlib.contextmanager
    def paused(self):
        """Wall time spent inside (evaluation, checkpoint writing) is left out of the rates, also when
        micro-steps are pending (an eval or save step that is not a logging step)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - start

    def summary(self, device, prefix: str = "", rates: bool = True) -> dict[str, float]:
        """Mean parts since the last reset; rates per second of wall time. One host sync; resets."""
        n_cb = self.sums.numel() - 3
        tokens = torch.as_tensor(self.tokens, device=self.sums.device).reshape(1).to(torch.float64)
        extra = torch.tensor([self.weight, self.samples], dtype=torch.float64, device=self.sums.device)
        totals = torch.cat([self.sums.to(torch.float64), tokens, extra]).to(device)
        if distributed():
            torch.distributed.all_reduce(totals)  # every process logs at the same step
        values = totals.tolist()
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        weight = values[-2]
        out = {f"{prefix}text_loss": values[0] / weight, f"{prefix}audio_loss": values[1] / weight}
        out.update({f"{prefix}audio_loss_cb{c}": values[3 + c] / weight for c in range(n_cb)})
        out[f"{prefix}consistency_loss"] = values[2] / weight
        out = {k: round(v, 6) for k, v in out.items()}
        if rates:
            out["tokens_per_second"] = round(values[3 + n_cb] / elapsed, 1)
            out["samples_per_second"] = round(values[-1] / elapsed, 3)
        self.reset()
        return out


class ThroughputClock(TrainerCallback):
    """Keeps setup out of tokens/s and samples/s: the meter's clock restarts when training begins.
    (Evaluation and checkpoint writing run inside `LossMeter.paused()`, see `train.trainer`.)"""

    def __init__(self, meter: LossMeter):
        self.meter = meter

    def on_train_begin(self, *args, **kwargs):
        if not self.meter:
            self.meter.started = time.perf_counter()


def memory_gb(device) -> float:
    """CUDA: peak allocated so far in this process. CPU: this process's RSS.

    Read only, never reset: CUDA keeps one peak counter per process, and a log that reset it would leave
    anyone measuring a span of steps (gpu-check) with what stayed resident after the last log instead of
    the steps' peak. A run's peak only grows, so the logged value is the high-water mark to compare with
    the card's memory."""
    if torch.cuda.is_available() and torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    import psutil  # a dependency of accelerate, hence always installed with transformers' Trainer

    return round(psutil.Process().memory_info().rss / 2**30, 3)


def _numbers(logs: dict) -> dict:
    return {
        k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class MetricsJsonlCallback(TrainerCallback):
    """One JSON object per training log (`loss` ...) and per evaluation (`eval_loss` ...) in
    OUTPUT_DIR/metrics.jsonl, main process only.

    A fresh run (global step 0) starts the file anew; a resumed run keeps the records up to the step it
    resumes from and drops later ones (written after that checkpoint by the interrupted run), so the
    file never mixes runs or repeats steps.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if state.global_step > 0 and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed run
                if record.get("step", math.inf) <= state.global_step:
                    kept.append(json.dumps(record) + "\n")
        self.path.write_text("".join(kept), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not ("loss" in logs or "eval_loss" in logs):
            return
        record = {"step": state.global_step, "epoch": state.epoch}
        record.update(_numbers(logs))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def console_line(logs: dict, step: int, max_steps: int) -> str | None:
    """The compact console form of a log: training (`step 10/200  loss ...`) or evaluation (`eval ...`)."""
    if "loss" in logs:
        head, keys, prefix = f"step {step}/{max_steps}", CONSOLE_KEYS, ""
    elif "eval_loss" in logs:
        head, keys, prefix = f"eval at step {step}", CONSOLE_KEYS[:4], "eval_"
    else:
        return None
    parts = [head]
    for key, label, fmt in keys:
        value = logs.get(prefix + key)
        if value is None or (key == "consistency_loss" and not value):
            continue
        parts.append(f"{label} {value:{fmt}}")
    return "  ".join(parts)


class CompactProgressCallback(ProgressCallback):
    """Trainer's tqdm bar (with ETA), showing the last loss; compact log lines instead of raw dicts."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        line = console_line(logs, state.global_step, state.max_steps)
        if line:
            self.training_bar.write(line)
