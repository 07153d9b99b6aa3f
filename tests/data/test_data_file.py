"""A data file's records: JSON list, {"samples": [...]}, JSON Lines streamed; unreadable files named."""

import json

import pytest
from chatml_records import chatml_record

from higgs_lora.data.data_file import DataFileError, iter_records, read_records


@pytest.mark.parametrize("layout", ["list", "samples", "jsonl", "single"])
def test_file_layouts_are_all_read(tmp_path, layout):
    records = [chatml_record(), chatml_record(system="x")]
    path = tmp_path / "d.json"
    if layout == "list":
        path.write_text(json.dumps(records))
    elif layout == "samples":
        path.write_text(json.dumps({"samples": records, "version": 1}))
    elif layout == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    else:
        records = records[:1]
        path.write_text(json.dumps(records[0]))
    assert read_records(path) == records


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(DataFileError, match="absent.json"):
        read_records(tmp_path / "absent.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{not json\n')
    with pytest.raises(DataFileError, match="line 2") as err:
        read_records(bad)
    assert "bad.jsonl" in str(err.value)
    scalar = tmp_path / "scalar.json"
    scalar.write_text('{"foo": 1}')
    with pytest.raises(DataFileError, match="scalar.json"):
        read_records(scalar)


def test_single_line_jsonl_with_a_flat_record(tmp_path):
    record = {"ref_text": "a", "ref_audio": "r.wav", "target_text": "b", "target_audio": "t.wav"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert read_records(path) == [record]


def test_utf8_bom_is_accepted(tmp_path):
    records = [chatml_record()]
    path = tmp_path / "bom.json"
    path.write_text("\ufeff" + json.dumps(records), encoding="utf-8")
    assert read_records(path) == records


def test_jsonl_is_streamed_record_by_record(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(chatml_record()) + "\n" + json.dumps(chatml_record(system="x")) + "\n{broken\n")
    records = iter_records(path)
    # the first records arrive before the reader has seen the broken line: nothing reads the file whole
    assert next(records) == chatml_record()
    assert next(records) == chatml_record(system="x")
    with pytest.raises(DataFileError, match="line 3"):
        next(records)


def test_pretty_printed_single_object_and_invalid_utf8(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(chatml_record(), indent=2))
    assert read_records(path) == [chatml_record()]
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"ref_text": "caf\xe9"}\n')
    with pytest.raises(DataFileError, match="UTF-8"):
        read_records(bad)
