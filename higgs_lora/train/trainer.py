"""transformers.Trainer with the shifted Higgs Audio loss, loss-part logging and metrics.jsonl."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from . import checkpoints
from .loss import compute_loss


class HiggsAudioTrainer(Trainer):
    """Trainer whose loss is `train.loss.compute_loss`; logs text/audio/per-codebook parts with `loss`."""

    def __init__(self, *args, text_loss_weight: float = 1.0, audio_loss_weight: float = 1.0, loss_fn=None,
                 max_tokens_per_batch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        # Swappable only so check-alignment's tests can inject a broken loss (the module's compute_loss
        # is looked up now, so fault-injection tests can patch it too).
        self.loss_fn = loss_fn or compute_loss
        self.max_tokens_per_batch = max_tokens_per_batch
        self.text_loss_weight = text_loss_weight
        self.audio_loss_weight = audio_loss_weight
        self._parts: dict[str, float] = {}
        self._parts_count = 0
        self.nonfinite_guard = None  # faults.NonFiniteGuard: sees every training loss

    def get_train_dataloader(self):
        if not self.max_tokens_per_batch:
            return super().get_train_dataloader()
        from ..data.sampler import length_grouped_dataloader  # token-budget batches (see data/sampler.py)

        return length_grouped_dataloader(self.train_dataset, self.data_collator, self.args, self.max_tokens_per_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        parts = self.loss_fn(outputs, inputs["label_audio_ids"], self.text_loss_weight, self.audio_loss_weight)
        if model.training:
            if self.nonfinite_guard is not None:
                self.nonfinite_guard.note_loss(parts.loss)
            self._accumulate(parts)
        return (parts.loss, outputs) if return_outputs else parts.loss

    def _accumulate(self, parts) -> None:
        values = {"text_loss": float(parts.text_loss), "audio_loss": float(parts.audio_loss)}
        values.update({f"audio_loss_cb{c}": float(v) for c, v in enumerate(parts.codebook_losses)})
        for key, value in values.items():
            self._parts[key] = self._parts.get(key, 0.0) + value
        self._parts_count += 1

    def _mean_parts(self) -> dict[str, float]:
        """Loss parts averaged over the steps since the last log and, like `loss`, over all processes."""
        keys = sorted(self._parts)
        totals = torch.tensor([self._parts[k] for k in keys] + [self._parts_count], dtype=torch.float64,
                              device=self.args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)  # log() runs on every process at the same step
        return {k: round(float(totals[i] / totals[-1]), 6) for i, k in enumerate(keys)}

    def _load_optimizer_and_scheduler(self, checkpoint):
        with _plain_cpu_map_location():
            return super()._load_optimizer_and_scheduler(checkpoint)

    def log(self, logs: dict, *args, **kwargs) -> None:
        # Trainer logs the mean loss since the last log; add the parts averaged over the same steps.
        if "loss" in logs and self._parts_count:
            logs.update(self._mean_parts())
            self._parts, self._parts_count = {}, 0
            if torch.cuda.is_available():
                logs["memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            if self.nonfinite_guard is not None:
                logs["skipped_nonfinite"] = self.nonfinite_guard.pop_log_count()
        super().log(logs, *args, **kwargs)

    def _save_checkpoint(self, model, trial, metrics=None):
        """Trainer's save, written under a staging name and renamed into place once complete.

        A crash mid-save (full disk, kill -9) leaves the earlier checkpoints as they were; rotation
        runs only after the new checkpoint is in place.
        """
        run_dir = self._get_output_dir(trial=trial)
        step = self.state.global_step
        staging = checkpoints.staging_dir(run_dir, step)
        final = Path(run_dir) / f"checkpoint-{step}"
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        output_dir, self.args.output_dir = self.args.output_dir, str(staging)
        try:
            super()._save_checkpoint(model, trial, metrics)  # writes staging/checkpoint-N (each rank its RNG)
        finally:
            self.args.output_dir = output_dir
        if distributed:
            torch.distributed.barrier()  # every rank's files are in the staging folder
        if self.args.should_save:
            checkpoints.write_marker(staging / final.name, step)
            checkpoints.publish(staging / final.name, final)
            os.rmdir(staging)
            self._rotate_checkpoints(use_mtime=False, output_dir=run_dir)
        if distributed:
            torch.distributed.barrier()  # nobody resumes or saves again before the rename


def allow_checkpoint_rng_state() -> None:
    """Let torch 2.6+'s weights-only unpickler read the numpy RNG state Trainer saves in checkpoints.

    Trainer 4.46 calls plain `torch.load(rng_state.pth)`; without this, resuming fails with
    "Unsupported global: numpy._core.multiarray._reconstruct".
    """
    multiarray = getattr(np, "_core", np.core).multiarray
    torch.serialization.add_safe_globals(
        [multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    )


@contextlib.contextmanager
def _plain_cpu_map_location():
    """Under DDP on CPU Trainer maps optimizer state to "cpu:<rank>", which torch.load rejects."""
    original = torch.load

    def load(*args, map_location=None, **kwargs):
        if isinstance(map_location, torch.device) and map_location.type == "cpu":
            map_location = "cpu"
        return original(*args, map_location=map_location, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


class MetricsJsonlCallback(TrainerCallback):
    """One JSON object per logged training step in OUTPUT_DIR/metrics.jsonl (main process only)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed run continues the file from its checkpoint's step: records a killed run logged
        # after that checkpoint are dropped (they are logged again); a fresh run starts it empty.
        if not state.is_world_process_zero or not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and _record_step(line) <= state.global_step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch}
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _record_step(line: str) -> float:
    try:
        return json.loads(line).get("step", math.inf)
    except ValueError:
        return math.inf  # a line cut short by a kill
