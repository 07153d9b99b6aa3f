"""This project's prompt in the native layout, and prompt parity against the native processor.

boson puts one `<|AUDIO_OUT|>` token in the text per audio segment and expands it inside the model to
the segment's columns (stream BOS column, codes, stream EOS column, delay pattern: T + 2 + C - 1
columns). Native expands it in the processor, marking the last C - 1 columns (where the delay pattern
runs out) with the delay token `<|reserved_special_token_6|>` instead of `<|AUDIO_OUT|>`. `to_native_layout`
writes boson's collated inputs that way; with it both models see the same positions and embeddings.

`native_prompt_parity` is the check-alignment check: the prompt this project's inference builds for a
sample (prompt builder + reference codes from this project's codec + collator) against the prompt the
native processor builds from the same conversation and the same 24 kHz reference file, encoded by the
codec exported to native format; token for token, reference audio codes included.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch


def to_native_layout(inputs: dict, num_codebooks: int, audio_token_id: int, delay_token_id: int) -> dict:
    """boson collated inputs (batch of one) -> native `input_ids`, `audio_input_ids`, `audio_input_ids_mask`."""
    ids = inputs["input_ids"][0].tolist()
    audio = inputs.get("audio_out_ids")
    starts = inputs.get("audio_out_ids_start")
    if audio is None or starts is None or audio.numel() == 0:
        return {"input_ids": torch.tensor([ids]), "audio_input_ids": None, "audio_input_ids_mask": None}
    starts = starts.tolist() + [audio.shape[1]]
    out, segment = [], 0
    for token in ids:
        if token != audio_token_id:
            out.append(token)
            continue
        n = starts[segment + 1] - starts[segment]
        out += [audio_token_id] * (n - (num_codebooks - 1)) + [delay_token_id] * (num_codebooks - 1)
        segment += 1
    if segment != len(starts) - 1:
        raise ValueError(f"{segment} audio placeholders in the prompt for {len(starts) - 1} audio segments")
    columns = audio.t().unsqueeze(0).long()
    return {
        "input_ids": torch.tensor([out]),
        "audio_input_ids": columns,
        "audio_input_ids_mask": torch.ones(columns.shape[:2], dtype=torch.bool),
    }


def conversation(sample, audio_path: str) -> list[dict]:
    """The native processor's messages for a cloning sample (as `data/sample.build_messages` orders them)."""
    messages = []
    if sample.system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": sample.system_prompt}]})
    messages += [
        {"role": "user", "content": [{"type": "text", "text": sample.ref_text}]},
        {"role": "assistant", "content": [{"type": "audio", "path": audio_path}]},
        {"role": "user", "content": [{"type": "text", "text": sample.target_text}]},
    ]
    return messages


def native_prompt_parity(
    samples, model_name: str, codec_name: str, workdir: str | Path | None = None, min_code_agreement: float = 1.0
) -> list[dict]:
    """One record per sample: `ok`, and where the two prompts first differ (text ids, audio layout, codes).

    Text ids and the audio layout (stream BOS/EOS and delay positions) must agree exactly; reference codes
    must agree on at least `min_code_agreement` of their entries (1.0: all; see `compare_prompts`)."""
    import soundfile as sf

    from ..data.audio import mono_wave
    from ..data.codes import load_codec
    from ..infer.inputs import InferenceInputs
    from ..model.load import load_tokenizer, resolve_model_path
    from .codec import export_codec
    from .config import DELAY_TOKEN
    from .runtime import run_jobs
    from .template import write_processor

    if codec_name == "tiny":
        raise ValueError("native prompt parity needs the real codec class (the `tiny` stand-in has no native twin)")
    import boson_multimodal.model.higgs_audio  # noqa: F401  registers the higgs_audio config type
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model_path(model_name))
    tokenizer = load_tokenizer(model_name)
    codec = load_codec(codec_name, device="cpu")
    delay_id = tokenizer.convert_tokens_to_ids(DELAY_TOKEN)
    with tempfile.TemporaryDirectory(prefix="higgs-lora-parity-") as tmp:
        work = Path(workdir or tmp)
        codec_dir = export_codec(codec_name, work / "codec")
        write_processor(
            work / "processor",
            tokenizer,
            codec_dir,
            config.audio_stream_bos_id,
            config.audio_stream_eos_id,
            codec.sampling_rate,
        )
        ours, conversations = [], []
        build = InferenceInputs(tokenizer, codec, config)
        for i, sample in enumerate(samples):
            wav_path = work / f"ref-{i}.wav"
            sf.write(wav_path, mono_wave(sample.ref_audio, None, codec.sampling_rate), codec.sampling_rate)
            local = type(sample)(**{**sample.__dict__, "ref_audio": str(wav_path)})
            ours.append(
                to_native_layout(build(local), config.audio_num_codebooks, config.audio_out_token_idx, delay_id)
            )
            conversations.append(conversation(local, str(wav_path)))
        [result] = run_jobs(
            [
                {
                    "kind": "prompt",
                    "processor_dir": str(work / "processor"),
                    "codec_dir": str(codec_dir),
                    "conversations": conversations,
                }
            ],
            work / "jobs",
        )
        if "error" in result:
            raise RuntimeError(f"native processor failed: {result['error']}\n{result['traceback']}")
        return [
            compare_prompts(o, n, tokenizer, min_code_agreement, config.audio_codebook_size)
            for o, n in zip(ours, result["prompts"])
        ]


def compare_prompts(
    ours: dict, native: dict, tokenizer=None, min_code_agreement: float = 1.0, codebook_size: int = 1024
) -> dict:
    """Text ids exactly; audio: same columns, stream BOS/EOS exactly where they are, codes agreeing on at
    least `min_code_agreement` of the entries (the two codecs compute the same function in different
    float order, so a code whose nearest-codebook distance is a near-tie may flip: random codebooks have
    many such ties, trained ones few)."""
    a, b = ours["input_ids"][0].tolist(), native["input_ids"].tolist()
    record = {"ok": True, "tokens": len(a), "native_tokens": len(b)}
    if a != b:
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        record.update(
            ok=False,
            first_text_mismatch=at,
            ours=tokenizer.decode(a[max(0, at - 5) : at + 5]) if tokenizer else a[at : at + 10],
            native=tokenizer.decode(b[max(0, at - 5) : at + 5]) if tokenizer else b[at : at + 10],
        )
    ca, cb = ours["audio_input_ids"], native["audio_input_ids"]
    if (ca is None) != (cb is None):
        record.update(ok=False, audio="one prompt has audio, the other none")
        return record
    if ca is None:
        return record
    ca, cb = ca[0], cb[0][native["audio_input_ids_mask"][0]]
    if ca.shape != cb.shape:
        record.update(ok=False, audio=f"{tuple(ca.shape)} audio columns here, {tuple(cb.shape)} native")
        return record
    special_a, special_b = ca >= codebook_size, cb >= codebook_size  # stream BOS / EOS
    specials = torch.equal(torch.where(special_a, ca, -1), torch.where(special_b, cb, -1))
    codes = ~(special_a | special_b)
    agreement = float((ca[codes] == cb[codes]).float().mean()) if codes.any() else 1.0
    record.update(stream_tokens_agree=specials, code_agreement=agreement)
    if not specials or agreement < min_code_agreement:
        record["ok"] = False
    return record


def alignment_check(model_name: str, codec_name: str, min_code_agreement: float = 1.0):
    """check-alignment's `--native_parity`: this project's inference prompt against transformers' native
    processor (independent code) for every sample, as one CheckResult."""
    from ..checks.result import CheckResult

    def check(samples, tokenizer, codec, config, infer_inputs):
        records = native_prompt_parity(samples, model_name, codec_name, min_code_agreement=min_code_agreement)
        bad = [i for i, r in enumerate(records) if not r["ok"]]
        summary = (
            f"{len(records) - len(bad)}/{len(records)} prompts agree token for token with transformers' "
            f"native processor" + (f"; first disagreement: sample {bad[0]}" if bad else "")
        )
        return CheckResult("native_prompt_parity", not bad, summary, records)

    return check
