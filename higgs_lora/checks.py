"""check-alignment: proof that training and inference see the same thing.

Three checks, each able to fail:
- prompt parity: per sample, the ids the trainer feeds up to the target's <|audio_out_bos|> equal
  the ids inference builds from the same components, and the reference codes the model sees
  (collated: stream BOS/EOS, delay pattern) are identical on both sides;
- label audit: per sample, text and audio label counts; no label on the reference clip; the
  stream EOS is a target in every codebook; audio labels equal the target codes they sit on;
- overfit: fit one sample through `train.recipe.train` (what `higgs-lora train` runs: its data loading and
  text front-end, collator, LoRA, precision, loss weights and Trainer, the run's flags; a padded batch of
  2), then judge it through the inference path. `regenerate` (small models): greedy generation through
  `VoiceCloner.clone` reproduces the target codes exactly and stops. `teacher_forced` (large models): the
  model's argmax audio codes at every target position of the inference inputs continued by the target
  equal the target codes; it converges in tens of steps where free-running regeneration would need hundreds.

- adapter (`--lora_path RUN`, instead of the overfit): the run's own adapter, loaded as `infer` loads
  it, on the run's own samples: its teacher-forced agreement on the inference inputs must beat the
  same model with the adapter switched off, and beat how often its argmax merely repeats the frame it
  was given. A run whose training saw other inputs than inference builds does not improve what
  inference asks of it; one trained on unshifted labels learned to repeat its input.

Further prompt-parity checks against independent implementations are passed to `run_checks`
(`parity_checks`); each runs after the built-in parity check.

The training side (dataset class, collator, loss, text front-end) is injectable so the tests can show each
check catching a broken pipeline: an unshifted loss, a delay-pattern mismatch, an unmasked reference, a
side that skips the normaliser. The collator and loss reach the fit through recipe's test-only hooks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data.collator import DictCollator, batch_to_inputs, build_collator, make_chatml_sample
from .data.dataset import VoiceCloningDataset
from .data.sample import CloneSample, inference_prompt
from .data.text import normalize_sample
from .infer.engine import ChunkSettings, GenerationSettings, InferenceInputs, VoiceCloner
from .model.precision import Precision, resolve_precision
from .train.config import TrainConfig
from .train.faults import TrainingAborted
from .train.loss import IGNORE, compute_loss


@dataclass
class CheckResult:
    name: str
    ok: bool
    summary: str
    details: dict | list = field(default_factory=dict)


@dataclass
class TrainingSide:
    """What the trainer uses; defaults are the real pipeline, tests swap in broken parts."""

    dataset_cls: type = VoiceCloningDataset
    collator_factory: Callable = build_collator
    loss_fn: Callable = compute_loss
    normalize_text: bool = True  # the text front-end (data/text.py) on the training side


def _segments(starts: torch.Tensor, total: int) -> list[tuple[int, int]]:
    bounds = starts.tolist() + [total]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def check_prompt_parity(
    dataset,
    train_collator,
    infer_inputs: InferenceInputs,
    audio_out_bos_id: int,
    infer_samples: list[CloneSample] | None = None,
) -> CheckResult:
    """`infer_samples`: the samples as the inference side prepared them (default: the training side's)."""
    rows = []
    for index, sample in enumerate(infer_samples or dataset.samples):
        item = dataset[index]
        train_ids = item.input_ids.tolist()
        bos_positions = [i for i, t in enumerate(train_ids) if t == audio_out_bos_id]
        train_prefix = train_ids[: bos_positions[-1] + 1]
        infer_codes = infer_inputs.reference_codes(sample)
        infer = infer_inputs(sample, codes=infer_codes)
        infer_ids = infer["input_ids"][0].tolist()
        ids_equal = train_prefix == infer_ids
        first_diff = next(
            (i for i, (a, b) in enumerate(zip(train_prefix, infer_ids)) if a != b),
            None if ids_equal else min(len(train_prefix), len(infer_ids)),
        )
        train_batch = train_collator([dataset[index]])
        t_seg = _segments(train_batch["audio_out_ids_start"], train_batch["audio_out_ids"].shape[1])[0]
        train_ref = train_batch["audio_out_ids"][:, t_seg[0] : t_seg[1]]
        infer_ref = infer["audio_out_ids"]
        codes_equal = train_ref.shape == infer_ref.shape and bool(torch.equal(train_ref, infer_ref.cpu()))
        raw_equal = len(infer_codes) == 1 and np.array_equal(dataset.codes(sample.ref_audio), infer_codes[0])
        row = {
            "index": index,
            "prompt_tokens": len(infer_ids),
            "ids_equal": ids_equal,
            "reference_codes_equal": codes_equal and raw_equal,
        }
        if not ids_equal:
            row["first_difference_at"] = first_diff
        if not codes_equal:
            row["reference_shapes"] = [list(train_ref.shape), list(infer_ref.shape)]
        row["ok"] = ids_equal and codes_equal and raw_equal
        rows.append(row)
    bad = [r["index"] for r in rows if not r["ok"]]
    ok = not bad
    summary = f"{len(rows) - len(bad)}/{len(rows)} samples: training prompt == inference prompt, same reference codes"
    if bad:
        summary += f"; mismatch in samples {bad}"
    return CheckResult("prompt_parity", ok, summary, rows)


def check_labels(dataset, train_collator, eos_id: int) -> CheckResult:
    rows = []
    for index in range(len(dataset)):
        batch = train_collator([dataset[index]])
        labels = batch["label_audio_ids"]
        segs = _segments(batch["audio_out_ids_start"], labels.shape[1])
        ref, target = segs[0], segs[-1]
        ref_labels = int((labels[:, ref[0] : ref[1]] != IGNORE).sum())
        tgt = labels[:, target[0] : target[1]]
        tgt_codes = batch["audio_out_ids"][:, target[0] : target[1]]
        eos_trained = bool(((tgt == eos_id).sum(dim=1) >= 1).all())
        mask = tgt != IGNORE
        labels_match = bool(torch.equal(tgt[mask], tgt_codes[mask]))
        row = {
            "index": index,
            "text_labels": int((batch["label_ids"] != IGNORE).sum()),
            "audio_labels": int(mask.sum()),
            "reference_labels": ref_labels,
            "stream_eos_trained": eos_trained,
            "audio_labels_match_codes": labels_match,
        }
        row["ok"] = (
            row["text_labels"] > 0 and row["audio_labels"] > 0 and ref_labels == 0 and eos_trained and labels_match
        )
        rows.append(row)
    bad = [r["index"] for r in rows if not r["ok"]]
    ok = not bad
    summary = f"{len(rows) - len(bad)}/{len(rows)} samples: reference masked, target trained, stream EOS a target" + (
        f"; wrong labels in samples {bad}" if bad else ""
    )
    return CheckResult("label_audit", ok, summary, rows)


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

    from .train import recipe

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


@dataclass
class AlignmentReport:
    checks: list[CheckResult]
    meta: dict

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            **self.meta,
            "checks": {c.name: {"ok": c.ok, "summary": c.summary, "details": c.details} for c in self.checks},
        }

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")

    def text(self) -> str:
        lines = [f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}" for c in self.checks]
        lines.append("alignment OK" if self.ok else "alignment FAILED")
        return "\n".join(lines)


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


def fit_settings(model) -> dict:
    """Judging mode, learning rate, step budget and LoRA size of the overfit check for `model`'s size:
    `small` (regenerate) below REGENERATE_MAX_PARAMS, `large` (teacher-forced) above."""
    size = sum(p.numel() for p in model.parameters())
    return dict(FIT_SETTINGS["small" if size < REGENERATE_MAX_PARAMS else "large"])


def run_checks(
    samples: list[CloneSample],
    model,
    tokenizer,
    codec,
    side: TrainingSide | None = None,
    overfit: bool = True,
    overfit_index: int = 0,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    check_every: int | None = None,
    log=print,
    mode: str | None = None,
    precision: Precision | None = None,
    config=None,
    text_normalization="none",
    cache: str = "auto",
    adapter: bool = False,
    parity_checks: tuple[Callable, ...] = (),
    train_config: TrainConfig | None = None,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
) -> AlignmentReport:
    """All checks on `samples`; `model` (the base model, no adapter) is trained in place by the overfit
    check (pass a throwaway copy), which fits through `train.recipe.train` under `train_config`: the
    run's `train` settings (precision, loss weights, LoRA targets, ...; default TrainConfig's, with
    `audio_tokenizer` naming `codec`), of which the fit sets the learning rate, steps and LoRA size
    (`max_steps`, `learning_rate`, `lora_r`, `lora_alpha`, else `fit_settings(model)`), the text
    front-end (`text_normalization`) and precision (`precision`, else auto for the model's device).
    `adapter`: `model` is a training run's adapter (PEFT, loaded as infer loads it): judged by
    `check_adapter` on all the samples instead of the overfit.
    `parity_checks`: extra prompt-parity checks against independent implementations of the prompt (e.g.
    transformers' native processor, `native.parity.alignment_check`), each called as
    check(samples, tokenizer, codec, config, infer_inputs) with the samples as inference prepares them,
    returning a CheckResult (or None where it cannot run).

    Without the overfit check `model` may be None and `config` the model config: prompt parity and
    the label audit need no weights. Each side runs the text front-end on the raw `samples` itself, as
    training and inference do.
    """
    side = side or TrainingSide()
    config = config if config is not None else model.config
    infer_samples = [normalize_sample(s, text_normalization) for s in samples]
    train_samples = [normalize_sample(s, text_normalization) if side.normalize_text else s for s in samples]
    dataset = side.dataset_cls(train_samples, tokenizer, codec, num_codebooks=config.audio_num_codebooks)
    train_collator = DictCollator(side.collator_factory(config))
    infer_inputs = InferenceInputs(tokenizer, codec, config)
    audio_out_bos = tokenizer.convert_tokens_to_ids("<|audio_out_bos|>")
    checks = [check_prompt_parity(dataset, train_collator, infer_inputs, audio_out_bos, infer_samples)]
    checks += [
        c
        for c in (extra(infer_samples, tokenizer, codec, config, infer_inputs) for extra in parity_checks)
        if c is not None
    ]
    checks.append(check_labels(dataset, train_collator, config.audio_stream_eos_id))
    for c in checks:
        log(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}")
    meta = {
        "samples": len(samples),
        "audio_num_codebooks": config.audio_num_codebooks,
        "use_delay_pattern": bool(config.use_delay_pattern),
    }
    if adapter:
        checks.append(check_adapter(dataset, model, tokenizer, codec, infer_samples, log))
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    elif overfit:
        auto = fit_settings(model)
        given = {
            "mode": mode,
            "learning_rate": learning_rate,
            "max_steps": max_steps,
            "check_every": check_every,
            "lora_r": lora_r,
            "lora_alpha": lora_alpha,
        }
        base = train_config or TrainConfig(train_data="", audio_tokenizer=str(getattr(codec, "name", "tiny")))
        auto["lora_alpha"] = (lora_r or auto["lora_r"]) * TrainConfig.lora_alpha // TrainConfig.lora_r
        settings = {k: v if v is not None else auto[k] for k, v in given.items()}
        precision = precision or resolve_precision("auto", next(model.parameters()).device)
        # The training side's text front-end, as `train` applies it where samples load.
        cfg = fit_config(
            replace(
                base,
                text_normalization=text_normalization if side.normalize_text else "none",
                mixed_precision=precision.name,
            ),
            settings,
        )
        meta["overfit"] = dict(settings, precision=precision.name, via="train.recipe")
        log(
            f"overfit ({settings['mode']}, LoRA r={settings['lora_r']} through train's recipe, lr "
            f"{settings['learning_rate']:g}, at most {settings['max_steps']} steps, {precision.name}) on sample "
            f"{overfit_index} ..."
        )
        sample = infer_samples[overfit_index]
        # The training cache's codes (prompt parity just showed the inference side encodes them equally).
        known = {
            str(q): dataset.codes(p) for p in (sample.ref_audio, sample.target_audio) for q in (p, os.path.abspath(p))
        }
        custom = lambda part, real: part if part is not real else None  # noqa: E731  (recipe's own by default)
        checks.append(
            check_overfit(
                sample,
                samples[overfit_index],
                model,
                tokenizer,
                codec,
                cfg,
                dataset.codes(sample.target_audio),
                settings["mode"],
                settings["check_every"],
                log=log,
                known_codes=known,
                cache=cache,
                collator_factory=custom(side.collator_factory, build_collator),
                loss_fn=custom(side.loss_fn, compute_loss),
            )
        )
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    return AlignmentReport(checks, meta)
