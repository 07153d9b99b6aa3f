"""check-alignment: proof that training and inference see the same thing.

Three checks, each able to fail:
- prompt parity: per sample, the ids the trainer feeds up to the target's <|audio_out_bos|> equal
  the ids inference builds from the same components, and the reference codes the model sees
  (collated: stream BOS/EOS, delay pattern) are identical on both sides;
- label audit: per sample, text and audio label counts; no label on the reference clip; the
  stream EOS is a target in every codebook; audio labels equal the target codes they sit on;
- overfit-and-regenerate: fine-tune on one sample through the training dataset, collator and loss
  until it fits, then greedy-generate through the inference path and compare with the sample's
  target codes (exact match expected on the tiny model).

The training side (dataset class, collator, loss) is injectable so the tests can show each check
catching a broken pipeline: an unshifted loss, a delay-pattern mismatch, an unmasked reference.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data.dataset import DictCollator, VoiceCloningDataset, build_collator
from .data.sample import CloneSample
from .data.text import normalize_sample
from .infer.engine import GenerationSettings, InferenceInputs, VoiceCloner
from .train.loss import compute_loss

IGNORE = -100


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


def check_prompt_parity(dataset, train_collator, infer_inputs: InferenceInputs, audio_out_bos_id: int,
                        infer_samples: list[CloneSample] | None = None) -> CheckResult:
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
        first_diff = next((i for i, (a, b) in enumerate(zip(train_prefix, infer_ids)) if a != b),
                          None if ids_equal else min(len(train_prefix), len(infer_ids)))
        train_batch = train_collator([dataset[index]])
        t_seg = _segments(train_batch["audio_out_ids_start"], train_batch["audio_out_ids"].shape[1])[0]
        train_ref = train_batch["audio_out_ids"][:, t_seg[0]:t_seg[1]]
        infer_ref = infer["audio_out_ids"]
        codes_equal = train_ref.shape == infer_ref.shape and bool(torch.equal(train_ref, infer_ref.cpu()))
        raw_equal = len(infer_codes) == 1 and np.array_equal(dataset.codes(sample.ref_audio), infer_codes[0])
        row = {"index": index, "prompt_tokens": len(infer_ids), "ids_equal": ids_equal,
               "reference_codes_equal": codes_equal and raw_equal}
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
        ref_labels = int((labels[:, ref[0]:ref[1]] != IGNORE).sum())
        tgt = labels[:, target[0]:target[1]]
        tgt_codes = batch["audio_out_ids"][:, target[0]:target[1]]
        eos_trained = bool(((tgt == eos_id).sum(dim=1) >= 1).all())
        mask = tgt != IGNORE
        labels_match = bool(torch.equal(tgt[mask], tgt_codes[mask]))
        row = {"index": index, "text_labels": int((batch["label_ids"] != IGNORE).sum()),
               "audio_labels": int(mask.sum()), "reference_labels": ref_labels,
               "stream_eos_trained": eos_trained, "audio_labels_match_codes": labels_match}
        row["ok"] = row["text_labels"] > 0 and row["audio_labels"] > 0 and ref_labels == 0 and eos_trained and labels_match
        rows.append(row)
    bad = [r["index"] for r in rows if not r["ok"]]
    ok = not bad
    summary = (f"{len(rows) - len(bad)}/{len(rows)} samples: reference masked, target trained, stream EOS a target"
               + (f"; wrong labels in samples {bad}" if bad else ""))
    return CheckResult("label_audit", ok, summary, rows)


def check_overfit(sample: CloneSample, model, tokenizer, codec, side: TrainingSide, max_steps: int = 400,
                  learning_rate: float = 3e-3, check_every: int = 25, log=print) -> CheckResult:
    """Fit one sample with the training pipeline, then regenerate it with the inference pipeline."""
    dataset = side.dataset_cls([sample], tokenizer, codec, num_codebooks=model.config.audio_num_codebooks)
    collator = DictCollator(side.collator_factory(model.config))
    device = next(model.parameters()).device
    target = dataset.codes(sample.target_audio)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    cloner = None
    settings = GenerationSettings(max_new_tokens=target.shape[1] + 2 * model.config.audio_num_codebooks + 8,
                                  temperature=0.0, ras_win_len=0)
    history, generated, step, t0 = [], None, 0, time.time()
    for step in range(1, max_steps + 1):
        model.train()
        batch = {k: v.to(device) for k, v in collator([dataset[0]]).items()}
        parts = side.loss_fn(model(**batch), batch["label_audio_ids"])
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % check_every and step != max_steps:
            continue
        cloner = cloner or VoiceCloner(model, tokenizer, codec)
        generated = cloner.generate(sample, settings)
        matched = _codes_equal(generated.codes, target)
        history.append({"step": step, "loss": round(float(parts.loss.detach()), 5), "exact_match": matched,
                        "stopped": generated.stopped})
        log(f"  overfit step {step}: loss {float(parts.loss.detach()):.4f}, regenerated {generated.codes.shape[1]}/"
            f"{target.shape[1]} frames, exact match: {matched}")
        if matched and generated.stopped:
            break
    model.eval()
    ok = bool(generated is not None and _codes_equal(generated.codes, target) and generated.stopped)
    agree = _frame_agreement(generated.codes if generated is not None else None, target)
    summary = (f"after {step} steps, greedy generation {'reproduces' if ok else 'does NOT reproduce'} the target "
               f"({target.shape[1]} frames; {agree:.1%} of codes agree{', stopped at stream EOS' if generated is not None and generated.stopped else ', no stop'})")
    return CheckResult("overfit_regenerate", ok, summary,
                       {"steps": step, "seconds": round(time.time() - t0, 1), "history": history,
                        "target_frames": int(target.shape[1]),
                        "generated_frames": int(generated.codes.shape[1]) if generated is not None else 0,
                        "code_agreement": round(agree, 4)})


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
        return {"ok": self.ok, **self.meta,
                "checks": {c.name: {"ok": c.ok, "summary": c.summary, "details": c.details} for c in self.checks}}

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")

    def text(self) -> str:
        lines = [f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}" for c in self.checks]
        lines.append("alignment OK" if self.ok else "alignment FAILED")
        return "\n".join(lines)


def run_checks(samples: list[CloneSample], model, tokenizer, codec, side: TrainingSide | None = None,
               overfit: bool = True, overfit_index: int = 0, max_steps: int = 400, learning_rate: float = 3e-3,
               check_every: int = 25, log=print, text_normalization="none") -> AlignmentReport:
    """All checks on `samples`; `model` is trained in place by the overfit check (pass a throwaway copy).

    Each side runs the text front-end on the raw `samples` itself, as training and inference do."""
    side = side or TrainingSide()
    config = model.config
    infer_samples = [normalize_sample(s, text_normalization) for s in samples]
    train_samples = [normalize_sample(s, text_normalization) if side.normalize_text else s for s in samples]
    dataset = side.dataset_cls(train_samples, tokenizer, codec, num_codebooks=config.audio_num_codebooks)
    train_collator = DictCollator(side.collator_factory(config))
    infer_inputs = InferenceInputs(tokenizer, codec, config)
    audio_out_bos = tokenizer.convert_tokens_to_ids("<|audio_out_bos|>")
    checks = [check_prompt_parity(dataset, train_collator, infer_inputs, audio_out_bos, infer_samples),
              check_labels(dataset, train_collator, config.audio_stream_eos_id)]
    for c in checks:
        log(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}")
    if overfit:
        log(f"overfit-and-regenerate on sample {overfit_index} ...")
        checks.append(check_overfit(infer_samples[overfit_index], model, tokenizer, codec, side, max_steps, learning_rate,
                                    check_every, log=log))
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    return AlignmentReport(checks, {"samples": len(samples), "audio_num_codebooks": config.audio_num_codebooks,
                                    "use_delay_pattern": bool(config.use_delay_pattern)})
