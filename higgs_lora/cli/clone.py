"""`higgs-lora clone`: one sentence (or a long text) in the voice of one reference clip."""

from __future__ import annotations

from pathlib import Path

from .generation_args import add_generation_arguments, add_model_arguments

NAME = "clone"
SUMMARY = "clone a voice from the command line: --ref_audio R.wav --ref_text ... --text ... --output out.wav"


def add_arguments(p) -> None:
    p.add_argument("--ref_audio", required=True, help="reference clip of the voice (any format soundfile reads)")
    p.add_argument("--ref_text", required=True, help="what the reference clip says")
    p.add_argument("--text", required=True, help="what to say in that voice (long texts are generated in chunks)")
    p.add_argument("--output", required=True, help="WAV file to write")
    add_model_arguments(p)
    add_generation_arguments(p)


def run(args) -> int:
    from ..data.audio import write_wav
    from ..data.formats import SampleError
    from ..data.sample import CloneSample
    from ..data.text import normalize_sample
    from ..infer.inputs import check_text
    from .generation_args import load_cloner, resolve_settings

    check_text(args.text)
    if not args.ref_text.strip():
        raise SampleError("empty_text", "empty_text: --ref_text is empty; give the transcript of --ref_audio")
    if Path(args.ref_audio).is_dir():
        raise ValueError(f"--ref_audio {args.ref_audio} is a folder; name one audio file (WAV, FLAC, ...) in it")
    if not Path(args.ref_audio).is_file():
        raise FileNotFoundError(f"--ref_audio {args.ref_audio}: no such file")
    output = Path(args.output)
    if output.is_dir():
        raise ValueError(f"--output {output} is a folder; name a .wav file")
    _check_reference(args.ref_audio)
    settings, generation, chunking = resolve_settings(args)
    # The same text front-end as training and `infer` (the run's settings, else the default).
    sample = normalize_sample(
        CloneSample(
            ref_text=args.ref_text,
            ref_audio=str(args.ref_audio),
            target_text=args.text,
            system_prompt=settings["system_prompt"],
        ),
        settings["text_normalization"],
    )
    cloner = load_cloner(args, settings)
    wav, sr, result = cloner.clone(sample, generation, chunking)
    write_wav(output, wav, sr)
    seconds = len(wav) / sr
    speed = f", {seconds / result.seconds:.2f}x real time" if result.seconds > 0 else ""
    print(
        f"wrote {output}: {seconds:.2f} s of audio, {result.frames} frames in {len(result.chunks)} chunk(s), "
        f"{'stopped at the stream EOS' if result.stopped else 'a chunk reached its token cap'}; "
        f"{result.seconds:.1f} s on {cloner.device}{speed}"
    )
    return 0


def _check_reference(path: str) -> None:
    """The reference clip must decode: the same reason code as `validate` where it does not."""
    from ..data.audio import AudioError, audio_duration
    from ..data.formats import SampleError

    try:
        audio_duration(path)
    except AudioError as err:
        raise SampleError("audio_unreadable", f"audio_unreadable: --ref_audio {path}: {err}") from None
