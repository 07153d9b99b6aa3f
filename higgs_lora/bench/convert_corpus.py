"""How long `convert` takes on a Common Voice release of N rows, and how much memory it holds.

    python -m higgs_lora.bench.convert_corpus --rows 100000 --work /tmp/cv_bench

The release is synthetic: one short 48 kHz mp3, hard-linked under N names (so every row's file is
opened and its header read, as in a real release, without N encodes), spread over `--speakers`
speakers, with Arabic sentences. Prints the time of the convert alone and the process's peak RSS:
the clips' audio is never loaded, so memory grows with the row count, not with the audio.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from ..data.corpora.commonvoice import RELEASE_COLUMNS


def make_release(root: Path, rows: int, speakers: int = 200, seconds: float = 0.5) -> dict[str, str]:
    """A Common Voice release folder at `root` (validated.tsv + clips/); returns clip name -> sentence."""
    import numpy as np
    import soundfile as sf

    clips = root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    one = root / "one.mp3"
    t = np.arange(int(seconds * 48000)) / 48000
    sf.write(str(one), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000, format="MP3")
    texts, lines = {}, ["\t".join(RELEASE_COLUMNS)]
    for i in range(rows):
        name = f"common_voice_ar_{i}.mp3"
        try:
            os.link(one, clips / name)
        except OSError:  # a file system without hard links
            shutil.copyfile(one, clips / name)
        texts[name] = f"جُمْلَةٌ رَقْمُ {i}"
        lines.append(
            "\t".join([f"spk{i % speakers}", name, str(i), texts[name], "", "2", "0", "", "", "", "", "ar", ""])
        )
    (root / "validated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return texts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--speakers", type=int, default=200)
    p.add_argument("--work", required=True, help="an empty folder to build the release and write the output in")
    args = p.parse_args(argv)
    from ..data.convert import convert

    work = Path(args.work)
    make_release(work / "cv", args.rows, args.speakers)
    start = time.perf_counter()
    report = convert([work / "cv"], work / "train.jsonl", overwrite=True)
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    print(
        f"{args.rows} rows, {args.speakers} speakers: {report.converted} samples in {elapsed:.1f} s "
        f"({args.rows / elapsed:.0f} rows/s), peak RSS {peak_mib:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
