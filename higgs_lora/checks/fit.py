"""The overfit check: fit one sample through `train.recipe.train`, then judge it through inference.

`regenerate` (small models): greedy generation through `VoiceCloner.clone` reproduces the target codes
exactly and stops. `teacher_forced` (large models): the argmax audio codes on the inference inputs continued
by the target equal the target codes; it converges in tens of steps where regeneration needs hundreds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.sample import CloneSample
from ..infer.engine import VoiceCloner
from ..infer.inputs import InferenceInputs
from ..infer.settings import ChunkSettings, GenerationSettings
from ..train.config import TrainConfig
from ..train.faults import TrainingAborted
from .judge import as_inference_runs, teacher_forced_agreement, teacher_forced_inputs
from .result import CheckResult

# The fit's settings per model size, measured. Small (the tiny model): a LoRA of rank = its hidden size
# fits one sample for exact free-running regeneration (see docs/alignment.md for the measurement); the
# released 5.8B shape: a LoRA r=16 reaches 100 % teacher-forced agreement by step 25 at 1e-3 and diverges
# at 3e-3 (H200, bf16). LoRA alpha keeps train's alpha/r ratio; every other training setting is the run's
# (`train` flags, TrainConfig defaults).
REGENERATE_MAX_PARAMS = 50_000_000  # below this size the judge regenerates; above, teacher-forced
FIT_SETTINGS = {
    "small": {"mode": "regenerate", "learning_rate": 3e-3, "max_steps": 400, "check_every": 25, "lora_r": 64},
    "large": {"mode": "teacher_forced", "learning_rate": 1e-3, "max_steps": 100, "check_every": 5, "lora_r": 16},
}
MODES = ("regenerate", "teacher_forced")


def padded_partner(sample: CloneSample) -> CloneSample:
    """The same sample under a different system prompt: same reference and target, another length.

    Fitting [sample, partner] makes the fit a real padded batch of 2, as in training, while the
    target to reproduce stays one.
    """
    prompt = "" if sample.system_prompt else "Generate speech in the provided voice, clearly and naturally."
    return replace(sample, system_prompt=prompt)


class _KnownCodes:
    """A codec that answers from codes already computed (by the training cache) and encodes anything else."""

    def __init__(self, codec, known: dict):
        self._codec, self._known = codec, known
        self.sampling_rate, self.tps, self.num_codebooks = codec.sampling_rate, codec.tps, codec.num_codebooks

    def encode(self, audio_path_or_wv, sr=None):
        key = str(audio_path_or_wv) if isinstance(audio_path_or_wv, (str, Path)) else None
        if key in self._known:
            return torch.from_numpy(np.asarray(self._known[key]))
        return self._codec.encode(audio_path_or_wv, sr)

    def decode(self, codes):
        return self._codec.decode(codes)


def fit_settings(model) -> dict:
    """Judging mode, learning rate, step budget and LoRA size of the overfit check for `model`'s size:
    `small` (regenerate) below REGENERATE_MAX_PARAMS, `large` (teacher-forced) above."""
    size = sum(p.numel() for p in model.parameters())
    return dict(FIT_SETTINGS["small" if size < REGENERATE_MAX_PARAMS else "large"])


def fit_data_record(sample: CloneSample) -> dict:
    """`sample` as a line of the training data file format (data/validate.py reads it back unchanged)."""
    audio = lambda path: {"type": "audio", "audio_url": os.path.abspath(path)}  # noqa: E731
    messages = [{"role": "system", "content": sample.system_prompt}] if sample.system_prompt else []
    messages += [
        {"role": "user", "content": sample.ref_text},
        {"role": "assistant", "content": audio(sample.ref_audio)},
        {"role": "user", "content": sample.target_text},
        {"role": "assistant", "content": audio(sample.target_audio)},
    ]
    return {
        "messages": messages,
        "start_index": len(messages) - 1,
        **({"speaker": sample.speaker} if sample.speaker else {}),
    }


def fit_config(base: TrainConfig, settings: dict) -> TrainConfig:
    """The run's settings (`base`: the user's `train` flags) with what makes it a one-sample fit: the
    fit's learning rate, steps and LoRA size (`settings`), one padded batch of 2 per step, no warmup, no
    dropout, no checkpoints, no held-out data (`check_overfit` adds its data file and folder). No default
    system prompt: the data file says each sample's own."""
    return replace(
        base,
        system_prompt="",
        batch_size=2,
        gradient_accumulation_steps=1,
        max_steps=settings["max_steps"],
        num_epochs=1.0,
        learning_rate=settings["learning_rate"],
        lora_r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=0.0,
        warmup_ratio=0.0,
        logging_steps=settings["check_every"],
        save_steps=10**9,
        dataloader_num_workers=0,
        report_to="none",
        eval_data=None,
        eval_split=0.0,
        eval_every_steps=0,
        resume_from_checkpoint=None,
        overwrite_output_dir=False,
        quick_test=False,
        skip_invalid=False,
        max_audio_seconds=None,
        cache_dir=None,
        require_cache=False,
    )


def check_overfit(
    sample: CloneSample,
    raw_sample: CloneSample,
    model,
    tokenizer,
    codec,
    cfg: TrainConfig,
    target: np.ndarray,
    mode: str = "regenerate",
    check_every: int = 25,
    log=print,
    known_codes: dict | None = None,
    cache: str = "auto",
    collator_factory: Callable | None = None,
    loss_fn: Callable | None = None,
) -> CheckResult:
    """Fit one sample through `train.recipe.train`, the code `higgs-lora train` runs (its data loading and
    text front-end, collator, LoRA, precision, loss and Trainer, under `cfg`: see `fit_config`), on a
    padded batch of 2 (`raw_sample` and its `padded_partner`, written as a data file), then judge it
    through the inference path. `sample` is `raw_sample` as inference prepares it; `target` its target
    codes (the training cache's).

    `regenerate` greedy-generates through `VoiceCloner.clone`, the entry point of `infer` and `clone`,
    with its KV cache (`cache`: auto = what infer picks on this device, static on CUDA) and without
    autocast, as infer runs, and expects the target codes exactly (and the stop); `teacher_forced`
    expects the model's argmax at every target position of the inference inputs continued by the target
    to equal the target codes. `collator_factory`/`loss_fn`: tests' broken parts, handed to recipe's hooks.
    The fit's run folder (adapter, metrics.jsonl, summaries) is temporary; its console output is dropped
    unless it fails."""
    from transformers import TrainerCallback

    from ..train import recipe

    if mode not in MODES:
        raise ValueError(f"overfit mode {mode!r}: use one of {', '.join(MODES)}")
    codec = _KnownCodes(codec, known_codes or {})
    infer_inputs = InferenceInputs(tokenizer, codec, model.config)
    tf_inputs = teacher_forced_inputs(infer_inputs, sample, target) if mode == "teacher_forced" else None
    one_chunk = ChunkSettings(max_chars=0)  # the target as one segment, as training saw it
    settings = GenerationSettings(
        max_new_tokens=target.shape[1] + 2 * model.config.audio_num_codebooks + 8, temperature=0.0, ras_win_len=0
    )
    history: list[dict] = []
    state = {"generated": None, "tf": None, "passed": False, "cloner": None}
    max_steps = cfg.max_steps
    console, console_err = sys.stdout, sys.stderr

    def judge(trained, step: int, loss: float) -> bool:
        trained.eval()  # generation and the teacher-forced pass never run with dropout
        row = {"step": step, "loss": round(loss, 5)}
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console_err):
            if mode == "regenerate":
                if state["cloner"] is None:
                    state["cloner"] = VoiceCloner(trained, tokenizer, codec, cache=cache)
                with as_inference_runs(trained):
                    _, _, generated = state["cloner"].clone(sample, settings, one_chunk)
                state["generated"] = generated
                matched = _codes_equal(generated.codes, target)
                row.update(exact_match=matched, stopped=generated.stopped)
                passed = matched and generated.stopped
                log(
                    f"  overfit step {step}: loss {loss:.4f}, regenerated {generated.codes.shape[1]}/"
                    f"{target.shape[1]} frames, exact match: {matched}"
                )
            else:
                with as_inference_runs(trained):
                    tf = teacher_forced_agreement(trained, tf_inputs, trained.config)
                state["tf"] = tf
                row.update(teacher_forced_agreement=round(tf["agreement"], 5))
                passed = tf["positions"] > 0 and tf["wrong"] == 0
                log(
                    f"  overfit step {step}: loss {loss:.4f}, teacher-forced agreement {tf['agreement']:.2%} "
                    f"of {tf['positions']} target codes"
                )
        history.append(row)
        trained.train()
        state["passed"] = passed
        return passed

    class Probe(TrainerCallback):
        def on_step_end(self, args, st, control, **kwargs):
            if st.global_step >= max_steps:
                control.should_log = True  # the last step is judged too, whatever the logging interval

        def on_log(self, args, st, control, logs=None, model=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            if judge(model, st.global_step, float(logs["loss"])):
                control.should_training_stop = True

    with tempfile.TemporaryDirectory(prefix="higgs_lora_check_") as tmp:
        data = Path(tmp) / "fit.json"
        data.write_text(
            json.dumps([fit_data_record(raw_sample), fit_data_record(padded_partner(raw_sample))], ensure_ascii=False),
            encoding="utf-8",
        )
        cfg = replace(cfg, train_data=str(data), output_dir=str(Path(tmp) / "run"))
        hooks = {k: v for k, v in (("collator_factory", collator_factory), ("loss_fn", loss_fn)) if v is not None}
        t0 = time.time()
        printed = io.StringIO()
        aborted = None
        try:
            # recipe's start/end blocks and progress bars describe a throwaway run (its adapter is deleted
            # below): the check prints its own judgements instead.
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                recipe.train(cfg, model=model, tokenizer=tokenizer, codec=codec, callbacks=[Probe()], **hooks)
        except TrainingAborted as exc:  # the fit diverged: a failed check, not a crash
            aborted = str(exc).split(". ")[0]
        except BaseException:
            console.write(printed.getvalue())  # the recipe's own account of what went wrong
            raise
    model.eval()
    step = history[-1]["step"] if history else 0
    ok = bool(state["passed"])
    learning_rate = cfg.learning_rate
    details = {
        "mode": mode,
        "steps": step,
        "seconds": round(time.time() - t0, 1),
        "learning_rate": learning_rate,
        "max_steps": max_steps,
        "check_every": check_every,
        "precision": cfg.mixed_precision,
        "lora_r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "batch_size": cfg.batch_size,
        "history": history,
        "target_frames": int(target.shape[1]),
    }
    if aborted:
        details["aborted"] = aborted
        summary = (
            f"the fit through train's recipe (LoRA r={cfg.lora_r}, lr {learning_rate:g}) stopped: {aborted}; "
            f"a lower --learning_rate may converge"
        )
        return CheckResult(f"overfit_{mode}", False, summary, details)
    if mode == "regenerate":
        generated, cloner = state["generated"], state["cloner"]
        agree = _frame_agreement(generated.codes if generated is not None else None, target)
        details.update(
            generated_frames=int(generated.codes.shape[1]) if generated is not None else 0,
            code_agreement=round(agree, 4),
            cache=cloner.cache_mode if cloner else None,
            cuda_graphs=cloner.cuda_graphs if cloner else None,
        )
        summary = (
            f"after {step} steps (LoRA r={cfg.lora_r}, lr {learning_rate:g}), greedy generation "
            f"{'reproduces' if ok else 'does NOT reproduce'} the target ({target.shape[1]} frames; {agree:.1%} of "
            f"codes agree{', stopped at stream EOS' if generated is not None and generated.stopped else ', no stop'})"
        )
    else:
        tf = state["tf"] or {"agreement": 0.0, "positions": 0}
        details.update(code_agreement=round(tf["agreement"], 5), target_positions=tf["positions"])
        summary = (
            f"after {step} steps (LoRA r={cfg.lora_r}, lr {learning_rate:g}), teacher-forced argmax on the "
            f"inference inputs {'equals' if ok else 'does NOT equal'} the target codes ({tf['agreement']:.2%} of "
            f"{tf['positions']} positions)"
        )
    return CheckResult(f"overfit_{mode}", ok, summary, details)


def _codes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a is not None and a.shape == b.shape and bool(np.array_equal(a, b))


def _frame_agreement(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None or a.shape[0] != b.shape[0]:
        return 0.0
    n = min(a.shape[1], b.shape[1])
    return float((a[:, :n] == b[:, :n]).sum()) / b.size if b.size else 0.0
