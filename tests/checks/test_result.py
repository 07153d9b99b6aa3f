"""The report: its JSON and text, and `ok` only when every check passed."""

import json

from alignment_kit import NAMES

from higgs_lora.checks.result import AlignmentReport, CheckResult


def test_report_json(real_report, tmp_path):
    path = tmp_path / "nested" / "report.json"
    real_report.write(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["ok"] is True
    assert data["samples"] == 2 and data["audio_num_codebooks"] == 8 and data["use_delay_pattern"] is True
    assert list(data["checks"]) == NAMES
    for name in NAMES:
        entry = data["checks"][name]
        assert set(entry) == {"ok", "summary", "details"}
        assert entry["ok"] is True and isinstance(entry["summary"], str) and entry["summary"]
        assert entry["details"]
    assert "alignment OK" in real_report.text() and "[FAIL]" not in real_report.text()


def test_report_ok_is_false_when_any_check_fails(tmp_path):
    report = AlignmentReport([CheckResult("a", True, "fine"), CheckResult("b", False, "broken", {"x": 1})], {})
    assert report.ok is False
    report.write(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ok"] is False and data["checks"]["b"] == {"ok": False, "summary": "broken", "details": {"x": 1}}
    assert "[FAIL] b: broken" in report.text() and "alignment FAILED" in report.text()
