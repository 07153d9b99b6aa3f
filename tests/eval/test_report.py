"""Scoring is one code path for every system, and the report renders from its rows."""

import csv
import json

import numpy as np
import pytest

from higgs_lora.data.audio import load_audio
from higgs_lora.data.sample import CloneSample
from higgs_lora.eval.metrics import Scorers
from higgs_lora.eval.report import paired, summarize, write_report


@pytest.fixture()
def sample(shipped_clips):
    (ref, *_), (target, _, _, text) = shipped_clips[6], shipped_clips[7]
    return CloneSample(ref_text="x", ref_audio=ref, target_text=text, target_audio=target, speaker="spk3")


def test_score_depends_only_on_the_audio(sample, fakes):
    FakeEncoder, FakeASR = fakes
    scorers = Scorers(FakeEncoder(), FakeASR("please call me back"))
    wav = load_audio(sample.target_audio, 16000)
    a = scorers.score(wav, 16000, sample, target_duration=1.0, stopped=True)
    b = scorers.score(wav.copy(), 16000, sample, target_duration=1.0, stopped=True)
    assert a == b
    assert a["language"] == "en" and a["wer"] == pytest.approx(2 / 6, abs=1e-4)  # "this afternoon" missing
    assert a["duration_ratio"] == pytest.approx(len(wav) / 16000, abs=1e-3)
    # Louder audio changes the fake embedding: SIM is really computed from the clip given.
    c = scorers.score(np.clip(wav * 8, -1, 1), 16000, sample, 1.0, True)
    assert c["sim"] != a["sim"] and c["clipped_fraction"] > 0


def test_empty_generation_scores_as_a_failure(sample, fakes):
    FakeEncoder, FakeASR = fakes
    row = Scorers(FakeEncoder(), FakeASR()).score(np.zeros(0, np.float32), 24000, sample, 2.0, False)
    assert row["sim"] == 0.0 and row["wer"] == 1.0 and row["duration_ratio"] == 0.0 and row["transcript"] == ""


def test_asr_is_skipped_for_languages_it_does_not_cover(sample, fakes):
    asr = fakes[1]()
    asr.languages = {"ar"}
    row = Scorers(None, asr).score(np.ones(1600, np.float32) * 0.1, 16000, sample)
    assert row["wer"] is None and row["sim"] is None and not asr.calls


def _rows():
    rows = []
    for i in range(4):
        for system, sim, wer, stop in (
            ("ground_truth", 0.9, 0.1, None),
            ("baseline", 0.5 + 0.01 * i, 0.6, i < 2),
            ("fine_tuned", 0.7 - 0.1 * (i == 3), 0.3, True),
        ):
            rows.append(
                {
                    "index": i,
                    "system": system,
                    "speaker": "s",
                    "language": "en",
                    "sim": sim,
                    "wer": wer,
                    "cer": wer / 2,
                    "duration_s": 1.0,
                    "duration_ratio": 1.0 if system == "ground_truth" else 1.2,
                    "stopped_at_eos": stop,
                    "leading_silence_s": 0.1,
                    "trailing_silence_s": 0.2,
                    "clipped_fraction": 0.0,
                    "peak": 0.9,
                    "wav": f"audio/{system}/{i:04d}.wav",
                    "target_text": "t",
                    "transcript": "t",
                    "ref_words": 10,
                    "word_errors": int(10 * wer),
                }
            )
            if system == "ground_truth":
                rows[-1]["sim_other_speaker"] = 0.4
    return rows


def test_summary_and_paired_comparison():
    rows = _rows()
    s = summarize(rows)
    assert list(s) == ["ground_truth", "baseline", "fine_tuned"]
    assert (
        s["baseline"]["eos_rate"] == 0.5
        and s["fine_tuned"]["eos_rate"] == 1.0
        and s["ground_truth"]["eos_rate"] is None
    )
    assert s["fine_tuned"]["sim"]["mean"] == pytest.approx((0.7 * 3 + 0.6) / 4)
    assert s["baseline"]["wer_corpus"] == pytest.approx(0.6)
    c = paired(rows, "sim", "higher")
    assert c["wins"] == 4 and c["samples"] == 4  # 0.6 still beats 0.53
    assert paired(rows, "wer", "lower")["wins"] == 4


def test_report_files_render(tmp_path):
    from PIL import Image

    report = write_report(_rows(), {"data": "d.json", "model_path": "m", "baseline_model": "b"}, tmp_path)
    text = report.read_text(encoding="utf-8")
    assert "| SIM | higher | 0.900 | 0.515 | 0.675 |" in text
    assert "fine-tuned better on 4 of 4 samples" in text
    assert "| SIM of another speaker's recording (floor) | – | 0.400 |  |  |" in text
    assert "![metrics.png](metrics.png)" in text and "![paired.png](paired.png)" in text
    with (tmp_path / "results.csv").open(encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 12
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["fine_tuned_vs_baseline"]["sim"]["wins"] == 4
    for name in ("metrics.png", "paired.png"):
        image = Image.open(tmp_path / name)
        assert image.size[0] > 800 and image.size[1] > 400
        colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
        assert len(colours) > 20  # drawn, not blank


def test_other_speaker_floor_uses_a_different_voice(shipped_clips, fakes):
    from higgs_lora.eval.run import _add_other_speaker_sim

    clips = {spk: [p for p, s, *_ in shipped_clips if s == spk] for spk in ("spk1", "spk3")}
    samples = [CloneSample("r", clips[spk][0], "t", clips[spk][1], speaker=spk) for spk in ("spk1", "spk3")]
    rows = [{"index": i, "system": "ground_truth", "speaker": s.speaker} for i, s in enumerate(samples)]
    rows.append({"index": 0, "system": "fine_tuned", "speaker": "spk1"})
    scorers = Scorers(fakes[0]())
    _add_other_speaker_sim(rows, samples, scorers)
    from higgs_lora.eval.speaker import cosine

    emb = scorers.reference_embedding
    assert rows[0]["sim_other_speaker"] == round(cosine(emb(clips["spk3"][1]), emb(clips["spk1"][0])), 4)
    assert rows[1]["sim_other_speaker"] == round(cosine(emb(clips["spk1"][1]), emb(clips["spk3"][0])), 4)
    assert "sim_other_speaker" not in rows[2]
