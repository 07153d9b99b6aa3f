"""Flags `infer` and `clone` share (model, sampling, long text, cache). No torch: `--help` stays instant."""

from __future__ import annotations

from pathlib import Path

from ..constants import TEXT_CAP_FRAMES_PER_CHAR as FRAMES_PER_CHAR
from ..constants import TEXT_CAP_SLACK_FRAMES as SLACK_FRAMES
from ..defaults import AUDIO_TOKENIZER, BASE_MODEL
from ..infer.chunking import DEFAULT_CHUNK_MAX_CHARS, DEFAULT_CONTEXT_CHUNKS, DEFAULT_CROSSFADE_S
from .common import add_text_normalization


def add_model_arguments(p) -> None:
    # Defaults of None: a flag not given falls back to the training run's settings (higgs_lora_run.json
    # next to the adapter or in the merged folder), then to the built-in defaults.
    p.add_argument(
        "--model_path",
        default=None,
        help=f"merged model folder, base model (hub id or folder) or tiny (default: with --lora_path the "
        f"training run's base model, else {BASE_MODEL})",
    )
    p.add_argument(
        "--lora_path", default=None, help="adapter (training --output_dir), served unmerged on top of the model"
    )
    p.add_argument(
        "--audio_tokenizer",
        default=None,
        help=f"hub id, folder or tiny (default: the training run's codec, else {AUDIO_TOKENIZER})",
    )
    p.add_argument(
        "--system_prompt",
        default=None,
        help='system prompt ("" for none) (default: the training run\'s, else the project default)',
    )
    add_text_normalization(p, from_run=True)


def add_generation_arguments(p) -> None:
    p.add_argument("--temperature", type=float, default=0.3, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=50, help="sample among the K most likely codes (ignored when greedy)")
    p.add_argument("--top_p", type=float, default=0.95, help="nucleus sampling mass (ignored when greedy)")
    p.add_argument(
        "--ras_win_len",
        type=int,
        default=7,
        help="repetition-aware sampling window (0 = off); it resamples repeats even at temperature 0, so "
        "use 0 for repeatable greedy output",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="sampling seed, for repeatable output (chunk i uses seed + i)"
    )
    p.add_argument(
        "--max_new_tokens",
        type=int,
        default=2048,
        help=f"most new tokens per chunk, one audio frame (40 ms) each; each chunk is also capped at "
        f"{FRAMES_PER_CHAR} x its characters + {SLACK_FRAMES}, so a model that never stops cannot "
        f"run away (default: 2048)",
    )
    p.add_argument(
        "--chunk_max_chars",
        type=int,
        default=DEFAULT_CHUNK_MAX_CHARS,
        help="long text: split at sentences into chunks of at most this many characters (0 = never)",
    )
    p.add_argument(
        "--context_chunks",
        type=int,
        default=DEFAULT_CONTEXT_CHUNKS,
        help="long text: earlier generated chunks kept in the prompt after the reference",
    )
    p.add_argument("--crossfade", type=float, default=DEFAULT_CROSSFADE_S, help="seconds of crossfade between chunks")
    p.add_argument(
        "--cache",
        choices=["auto", "static", "dynamic"],
        default="auto",
        help="KV cache: static buckets + CUDA graphs (boson's serve-engine path) or dynamic; auto = static "
        "on CUDA, dynamic on CPU",
    )
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument(
        "--dtype",
        default="auto",
        help="auto (CUDA: bf16, fp16 on GPUs without native bf16, fp32 for weights stored in fp32; CPU: fp32), bf16, fp16, fp32",
    )


def check_paths(model_path: str | None, lora_path: str | None) -> None:
    """A missing local folder is a one-line error, not a hub lookup with a traceback."""
    if lora_path and not Path(lora_path).exists():
        raise FileNotFoundError(f"--lora_path {lora_path}: no such folder (pass a training --output_dir)")
    if model_path and model_path != "tiny" and not Path(model_path).exists():
        looks_local = model_path.startswith((".", "/", "~")) or model_path.count("/") >= 2 or "\\" in model_path
        if looks_local:
            raise FileNotFoundError(
                f"--model_path {model_path}: no such folder (pass a merged model folder, "
                f"a hub id such as {BASE_MODEL}, or tiny)"
            )


def resolve_settings(args):
    """Run settings (printing what came from where), generation and chunking settings; loads nothing."""
    from ..infer.run_settings import resolve_inference
    from ..infer.settings import ChunkSettings, GenerationSettings

    check_paths(args.model_path, args.lora_path)
    settings = resolve_inference(
        args.model_path,
        args.lora_path,
        args.audio_tokenizer,
        args.system_prompt,
        text_normalization=args.text_normalization,
    )
    settings.report()
    if args.max_new_tokens <= 0:
        raise ValueError("--max_new_tokens must be positive")
    generation = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        ras_win_len=args.ras_win_len,
        seed=args.seed,
    )
    chunking = ChunkSettings(
        max_chars=args.chunk_max_chars, context_chunks=args.context_chunks, crossfade_s=args.crossfade
    )
    return settings, generation, chunking


def load_cloner(args, settings):
    """The model (+ unmerged adapter) and codec, loaded once; CUDA graphs captured on CUDA."""
    from ..infer.engine import VoiceCloner

    try:
        return VoiceCloner.load(
            settings["model_path"],
            settings["lora_path"],
            settings["audio_tokenizer"],
            device=args.device,
            dtype=args.dtype,
            cache=args.cache,
        )
    except OSError as err:  # hub or folder lookups (transformers raises OSError with a long story)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"could not load model {settings['model_path']!r} / codec {settings['audio_tokenizer']!r}: "
            f"{first} (use a local folder, a reachable hub id, or tiny for the offline kit)"
        ) from None
