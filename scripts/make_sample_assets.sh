#!/usr/bin/env bash
# Regenerates the speech clips shipped in higgs_lora/data/assets/ (used by
# `higgs-lora create-sample-data`) and their manifest.json.
#
# Dev-time only: needs espeak-ng (Debian/Ubuntu: `apt-get install espeak-ng`) plus
# numpy, soundfile and soxr (all in the project venv). Users and CI never run this;
# the generated WAVs are committed so that the sample set works offline without apt.
#
# Usage: scripts/make_sample_assets.sh        (PYTHON=... to pick another interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
OUT_DIR="$ROOT/higgs_lora/data/assets"

if ! command -v espeak-ng >/dev/null 2>&1; then
    echo "espeak-ng not found; install it first (e.g. apt-get install -y espeak-ng)" >&2
    exit 1
fi

mkdir -p "$OUT_DIR"
"$PYTHON" - "$OUT_DIR" <<'PY'
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

OUT_DIR = Path(sys.argv[1])
SAMPLE_RATE = 24000  # the Higgs Audio tokenizer's rate, so loading needs no resampling

# speaker -> (language, espeak voice+variant, pitch 0-99, words per minute)
SPEAKERS = {
    "spk1": ("ar", "ar+m3", 35, 140),
    "spk2": ("ar", "ar+f2", 70, 150),
    "spk3": ("en", "en-us+m1", 45, 155),
}
# Arabic is written with full diacritics: espeak-ng guesses the vowels of bare
# consonant text badly, and the transcript must be exactly the text that was spoken.
CLIPS = [
    ("spk1_01.wav", "spk1", "مَرْحَبًا، كَيْفَ حَالُكَ؟"),
    ("spk1_02.wav", "spk1", "الْجَوُّ جَمِيلٌ الْيَوْمَ."),
    ("spk1_03.wav", "spk1", "أُحِبُّ قِرَاءَةَ الْكُتُبِ."),
    ("spk2_01.wav", "spk2", "صَبَاحُ الْخَيْرِ يَا صَدِيقِي."),
    ("spk2_02.wav", "spk2", "ذَهَبْتُ إِلَى السُّوقِ أَمْسِ."),
    ("spk2_03.wav", "spk2", "الْمَاءُ بَارِدٌ جِدًّا."),
    ("spk3_01.wav", "spk3", "The weather is lovely today."),
    ("spk3_02.wav", "spk3", "Please call me back this afternoon."),
    ("spk3_03.wav", "spk3", "I read a good book last night."),
]


def trim(wav: np.ndarray, sr: int, floor_db: float = -40.0, pad_s: float = 0.08) -> np.ndarray:
    # Light trim: drop only the near-silent lead-in/tail espeak adds, then leave exactly
    # `pad_s` of silence on each side (espeak sometimes starts speaking at sample 0, so
    # padding is added rather than merely kept) so onsets are not clipped.
    hop = int(0.01 * sr)
    n = len(wav) // hop
    rms = np.sqrt(np.mean(wav[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    speech = wav[active[0] * hop : (active[-1] + 1) * hop].copy()
    fade = int(0.005 * sr)  # a hard cut inside a waveform clicks
    ramp = np.linspace(0.0, 1.0, fade, dtype=speech.dtype)
    speech[:fade] *= ramp
    speech[-fade:] *= ramp[::-1]
    silence = np.zeros(int(pad_s * sr), dtype=speech.dtype)
    return np.concatenate([silence, speech, silence])


version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
entries = []
with tempfile.TemporaryDirectory() as tmp:
    for name, speaker, text in CLIPS:
        lang, voice, pitch, speed = SPEAKERS[speaker]
        raw = Path(tmp) / name
        argv = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(raw), text]
        subprocess.run(argv, check=True)
        wav, sr = sf.read(str(raw), dtype="float32", always_2d=True)
        wav = soxr.resample(wav.mean(axis=1), sr, SAMPLE_RATE, quality="VHQ")
        wav = trim(wav, SAMPLE_RATE)
        # A fixed -1 dBFS peak makes all speakers equally loud and avoids int16 clipping.
        wav = wav / np.abs(wav).max() * 10 ** (-1 / 20)
        sf.write(str(OUT_DIR / name), wav.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        argv[argv.index("-w") + 1] = f"raw_{name}"  # the temp path is meaningless elsewhere
        entries.append({
            "file": name,
            "speaker": speaker,
            "language": lang,
            "transcript": text,
            "duration_s": round(len(wav) / SAMPLE_RATE, 3),
            "espeak_command": shlex.join(argv),
        })
        print(f"{name}: {entries[-1]['duration_s']:.2f} s  {text}")

manifest = {
    "description": "Synthetic speech for the offline sample data set; regenerate with scripts/make_sample_assets.sh",
    "generator": version.split(" Data at:")[0].strip(),
    "postprocess": f"downmix, soxr VHQ resample to {SAMPLE_RATE} Hz, trim silence below -40 dB, 5 ms fades, 80 ms silent pad each side, peak -1 dBFS, PCM_16",
    "sample_rate": SAMPLE_RATE,
    "clips": entries,
}
(OUT_DIR / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
PY
