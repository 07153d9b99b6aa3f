"""The data-side checks, per sample, no weights needed.

- prompt parity: the ids the trainer feeds up to the target's <|audio_out_bos|> equal the ids inference
  builds from the same components, and the reference codes the model sees (collated: stream BOS/EOS,
  delay pattern) are identical on both sides;
- label audit: text and audio labels present, none on the reference clip, the stream EOS a target in
  every codebook, audio labels equal to the target codes they sit on.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.sample import CloneSample
from ..infer.inputs import InferenceInputs
from ..train.loss import IGNORE
from .result import CheckResult


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
