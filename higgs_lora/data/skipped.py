"""OUTPUT_DIR/skipped_encoding.json: the samples a run dropped because a clip failed to encode.

(Samples dropped by validation are listed in skipped_samples.json, see `selection`.)
"""

from __future__ import annotations

SKIPPED_ENCODING = "skipped_encoding.json"


def write_skipped(dataset, folder) -> None:
    """OUTPUT_DIR/skipped_encoding.json (main process) when samples were dropped because a clip failed to
    encode: nothing lost silently. `dataset` is a VoiceCloningDataset (its `skipped` list)."""
    import json
    import os
    from pathlib import Path

    if not dataset.skipped or int(os.environ.get("RANK", "0")) != 0:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / SKIPPED_ENCODING).write_text(
        json.dumps(dataset.skipped, indent=2, ensure_ascii=False), encoding="utf-8"
    )
