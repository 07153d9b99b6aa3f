"""Listen to the model while it trains: every N optimizer steps, clone K fixed held-out samples with the
weights being trained and log the audio and the `eval` metrics to TensorBoard and metrics.jsonl.

Main process only. Time is bounded: each clip stops at `eval_max_new_tokens` or at 3x its target's
length, whichever comes first. Under DDP the other processes wait at their next collective while the
main process generates, so keep K and the cap small. The RNG state is saved and restored around the
generation, so turning this on does not change the training run's random stream.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from transformers import TrainerCallback

from ..constants import target_token_cap
from ..model.peft_base import base_model
from .asr import MissingScorerError, load_asr
from .metrics import METRICS, Scorers
from .speaker import load_speaker_encoder

log = logging.getLogger(__name__)

MAX_LENGTH_RATIO = 3.0
EVAL_SEED = 1234


def eval_callbacks(cfg, tokenizer) -> list[TrainerCallback]:
    """[] unless cfg.eval_every_steps > 0; the samples are cfg.eval_data's first K, else the training data's."""
    if cfg.eval_every_steps <= 0:
        return []
    from ..data.validate import load_samples

    source = cfg.eval_data or cfg.train_data
    if not cfg.eval_data:
        log.warning(
            "--eval_every_steps without --eval_data: sampling the first %d TRAINING samples "
            "(not held out: they show progress, not generalisation)",
            cfg.eval_samples,
        )
    # The run's text front-end, as training reads its samples: the prompts must match the trained ones.
    samples = load_samples(source, cfg.system_prompt, text_normalization=cfg.text_normalization)[: cfg.eval_samples]
    return [
        SampleEvalCallback(
            samples,
            tokenizer,
            cfg.audio_tokenizer,
            Path(cfg.output_dir),
            cfg.eval_every_steps,
            cfg.eval_max_new_tokens,
            tensorboard=cfg.report_to == "tensorboard",
        )
    ]


def _optional_scorers() -> Scorers:
    """The default offline scorers where installed; training never stops for a missing optional package."""
    scorers = Scorers()
    try:
        scorers.speaker = load_speaker_encoder("resemblyzer")
    except MissingScorerError as err:
        log.warning("training-time eval runs without SIM: %s", err)
    try:
        scorers.asr = load_asr("pocketsphinx")
    except MissingScorerError as err:
        log.warning("training-time eval runs without WER/CER: %s", err)
    return scorers


class SampleEvalCallback(TrainerCallback):
    def __init__(
        self,
        samples,
        tokenizer,
        audio_tokenizer: str,
        output_dir: Path,
        every: int,
        max_new_tokens: int,
        tensorboard: bool = True,
        scorers: Scorers | None = None,
    ):
        self.samples = samples
        self.tokenizer = tokenizer
        self.audio_tokenizer = audio_tokenizer
        self.output_dir = Path(output_dir)
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.tensorboard = tensorboard
        self.scorers = scorers
        self._codec = None
        self._writer = None
        self._targets_s = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every or not state.is_world_process_zero or model is None:
            return
        record = self.evaluate(model, state.global_step, args.logging_dir)
        record["epoch"] = state.epoch
        self._write_record(record)

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()

    def _setup(self, device) -> None:
        from ..data.audio import audio_duration
        from ..data.codes import load_codec

        if self._codec is None:
            self._codec = load_codec(self.audio_tokenizer, device=str(device))
        if self.scorers is None:
            self.scorers = _optional_scorers()
        if self._targets_s is None:
            self._targets_s = [audio_duration(s.target_audio) for s in self.samples]

    def evaluate(self, model, step: int, logging_dir: str | None = None) -> dict:
        """Clone the fixed samples with `model` as it is now; returns the metrics.jsonl record."""
        import torch

        from ..data.audio import write_wav
        from ..infer.engine import VoiceCloner
        from ..infer.errors import DeviceError, first_line, is_device_error
        from ..infer.settings import GenerationSettings

        t0 = time.time()
        device = next(model.parameters()).device
        self._setup(device)
        was_training = model.training
        inner = base_model(model)  # LoRA layers sit inside
        rows, clips, failed = [], [], []
        cuda = [device] if device.type == "cuda" else []
        failure = None  # the DeviceError raised, kept so a second failure on the way out cannot hide it
        try:
            with torch.random.fork_rng(devices=cuda), torch.no_grad():
                # Dynamic cache: "auto" would, on CUDA, allocate static KV caches (~3 GB at the released
                # shape) and capture CUDA graphs at every evaluation, and leave the graph runners (and
                # the caches they hold) on the model being trained until the next one.
                cloner = VoiceCloner(inner, self.tokenizer, self._codec, cache="dynamic")  # puts the model in eval mode
                for index, sample in enumerate(self.samples):
                    cap = target_token_cap(
                        self.max_new_tokens,
                        MAX_LENGTH_RATIO,
                        self._targets_s[index],
                        self._codec.tps,
                        inner.config.audio_num_codebooks,
                    )
                    settings = GenerationSettings(max_new_tokens=cap, seed=EVAL_SEED + index)
                    try:
                        wav, sr, gen = cloner.clone(sample, settings)
                    except Exception as err:
                        if is_device_error(err):  # training on a failed GPU would only fail later, or worse
                            path = self._write_record(
                                self._record(step, t0, rows, failed) | {"eval_stopped_by_device_error": first_line(err)}
                            )
                            failure = DeviceError(
                                f"training step {step}, eval sample {index}",
                                err,
                                done=f"{len(rows)} eval clips generated",
                                saved=str(path),
                            )
                            raise failure from err
                        log.warning("training-time eval: sample %d skipped: %s", index, first_line(err))
                        failed.append(index)
                        continue
                    write_wav(self.output_dir / "eval_samples" / f"step_{step:06d}" / f"{index:02d}.wav", wav, sr)
                    clips.append((wav, sr))
                    rows.append(self.scorers.score(wav, sr, sample, self._targets_s[index], bool(gen.stopped)))
        except Exception:
            # After a CUDA error, restoring the CUDA RNG state (fork_rng's exit) fails too: report the first.
            if failure is not None:
                raise failure from failure.original
            raise
        finally:
            model.train(was_training)
        record = self._record(step, t0, rows, failed)
        if self.tensorboard and logging_dir:
            self._log_tensorboard(step, record, clips, logging_dir)
        return record

    @staticmethod
    def _record(step: int, t0: float, rows: list[dict], failed: list[int]) -> dict:
        record = {"step": step, "eval_seconds": round(time.time() - t0, 2)}
        for key in METRICS:
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                record[f"eval_{key}"] = round(float(np.mean(values)), 4)
        if rows:
            record["eval_eos_rate"] = round(float(np.mean([r["stopped_at_eos"] for r in rows])), 4)
        if failed:
            record["eval_failed_samples"] = failed
        return record

    def _write_record(self, record: dict) -> Path:
        path = self.output_dir / "metrics.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return path

    def _log_tensorboard(self, step: int, record: dict, clips: list, logging_dir: str) -> None:
        import torch
        from torch.utils.tensorboard import SummaryWriter

        from ..data.audio import load_audio

        if self._writer is None:
            self._writer = SummaryWriter(log_dir=logging_dir)
            for index, sample in enumerate(self.samples):  # once: what the clips should sound like
                sr = self._codec.sampling_rate
                self._writer.add_audio(
                    f"eval_reference/{index:02d}",
                    torch.as_tensor(load_audio(sample.ref_audio, sr)),
                    step,
                    sample_rate=sr,
                )
                self._writer.add_audio(
                    f"eval_target/{index:02d}",
                    torch.as_tensor(load_audio(sample.target_audio, sr)),
                    step,
                    sample_rate=sr,
                )
        for key, value in record.items():
            if key.startswith("eval_"):
                self._writer.add_scalar(f"eval/{key[5:]}", value, step)
        for index, (wav, sr) in enumerate(clips):
            if len(wav):
                self._writer.add_audio(
                    f"eval_generated/{index:02d}", torch.as_tensor(np.clip(wav, -1, 1)), step, sample_rate=sr
                )
        self._writer.flush()
