"""`higgs-lora infer`: clone voices, one WAV per sample + results.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL
from .common import add_system_prompt

NAME = "infer"
SUMMARY = "clone voices: one WAV per sample + results.json"


def add_arguments(p) -> None:
    p.add_argument("--chatml_file", required=True, help="samples (target audio optional)")
    p.add_argument("--output_dir", required=True, help="folder for the WAV files and results.json")
    p.add_argument("--model_path", default=BASE_MODEL, help=f"merged model, base model or tiny (default: {BASE_MODEL})")
    p.add_argument("--lora_path", default=None, help="adapter to apply on top of --model_path")
    p.add_argument("--audio_tokenizer", default=AUDIO_TOKENIZER, help=f"hub id, folder or tiny (default: {AUDIO_TOKENIZER})")
    p.add_argument("--temperature", type=float, default=0.3, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=50, help="sample among the K most likely codes (ignored when greedy)")
    p.add_argument("--top_p", type=float, default=0.95, help="nucleus sampling mass (ignored when greedy)")
    p.add_argument("--ras_win_len", type=int, default=7, help="repetition-aware sampling window (0 = off); it resamples repeats even at temperature 0, so use 0 for repeatable greedy output")
    p.add_argument("--max_new_tokens", type=int, default=2048, help="one audio frame (40 ms) per token")
    p.add_argument("--seed", type=int, default=None, help="sampling seed, for repeatable output")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32")
    p.add_argument("--cache_dir", default=None, help="read reference codes from this audio-code cache (see tokenize); misses are encoded and stored")
    p.add_argument("--require_cache", action="store_true", help="fail before generating if any reference clip is not in --cache_dir")
    add_system_prompt(p)


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..data.audio import write_wav
    from ..data.validate import load_samples
    from ..infer.engine import GenerationSettings, VoiceCloner

    samples = load_samples(args.chatml_file, args.system_prompt, require_target=False)
    cloner = VoiceCloner.load(args.model_path, args.lora_path, args.audio_tokenizer, device=args.device, dtype=args.dtype)
    if args.cache_dir:  # the codes training read, not a second encode
        from ..data.cache import cached_codec

        cloner.codec = cloner.prepare_inputs.codec = cached_codec(
            cloner.codec, args.cache_dir, args.require_cache, [s.ref_audio for s in samples], args.chatml_file,
            args.audio_tokenizer)
    elif args.require_cache:
        raise ValueError("--require_cache needs --cache_dir")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, ras_win_len=args.ras_win_len, seed=args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, sample in enumerate(tqdm(samples, desc="Generating", unit="sample")):
        t0 = time.time()
        wav, sr, gen = cloner.clone(sample, settings)
        name = f"{index:04d}" + (f"_{sample.speaker}" if sample.speaker else "") + ".wav"
        write_wav(out / name, wav, sr)
        results.append({"index": index, "wav": name, "speaker": sample.speaker, "target_text": sample.target_text,
                        "reference_audio": sample.ref_audio, "frames": int(gen.codes.shape[1]),
                        "seconds": round(len(wav) / sr, 3), "stopped_at_eos": gen.stopped,
                        "generation_seconds": round(time.time() - t0, 2)})
        if not gen.stopped:
            print(f"warning: sample {index} hit --max_new_tokens {args.max_new_tokens} before the stream EOS", file=sys.stderr)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {len(results)} WAV files and results.json to {out}")
    return 0

