"""The numbers docs/evaluation.md quotes are recomputed here, through the code that makes the demo's report.

The ground-truth rows depend on the shipped recordings and the offline scorers only (no model), so the
scores of the demo's six samples (`make demo`: `eval --max_samples 6 --asr pocketsphinx`) are rebuilt
with eval's own scoring and summary functions and compared with the table in the docs.
"""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
MARKER = "<!-- ground-truth rows of the demo's report: checked by tests/eval/test_docs_numbers.py -->"


def _doc_table() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    assert MARKER in text, "the checked table lost its marker"
    rows = {}
    for line in text.split(MARKER, 1)[1].strip().splitlines()[2:]:  # below the header and the rule
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


def test_docs_ground_truth_rows_are_what_the_demo_scores(sample_data_path):
    from higgs_lora.data.audio import audio_duration, load_audio
    from higgs_lora.data.validate import load_samples
    from higgs_lora.eval.metrics import SCORING_SR, Scorers
    from higgs_lora.eval.report import summarize
    from higgs_lora.eval.run import GROUND_TRUTH, _add_other_speaker_sim

    samples = load_samples(sample_data_path)[:6]
    scorers = Scorers.load("resemblyzer", "pocketsphinx")
    rows = []
    for index, sample in enumerate(samples):
        row = scorers.score(
            load_audio(sample.target_audio, SCORING_SR), SCORING_SR, sample, audio_duration(sample.target_audio), None
        )
        rows.append({"index": index, "speaker": sample.speaker or "", "system": GROUND_TRUTH, **row})
    _add_other_speaker_sim(rows, samples, scorers)
    truth = summarize(rows)[GROUND_TRUTH]

    doc = _doc_table()
    assert set(doc) == {
        "SIM",
        "SIM of another speaker's recording (floor)",
        "WER (English samples)",
        "CER (English samples)",
    }
    assert float(doc["SIM"]) == pytest.approx(truth["sim"]["mean"], abs=6e-4)
    assert float(doc["SIM of another speaker's recording (floor)"]) == pytest.approx(
        truth["sim_other_speaker"]["mean"], abs=6e-4
    )
    percent = lambda cell: float(re.fullmatch(r"([\d.]+)%", cell).group(1)) / 100  # noqa: E731
    assert truth["wer"]["n"] == 2  # the two English samples: pocketsphinx covers English only
    assert percent(doc["WER (English samples)"]) == pytest.approx(truth["wer"]["mean"], abs=6e-4)
    assert percent(doc["CER (English samples)"]) == pytest.approx(truth["cer"]["mean"], abs=6e-4)
