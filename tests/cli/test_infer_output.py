"""What `infer` prints for a whole run: warnings summarised once, not per sample."""

import json

from higgs_lora.cli import main
from higgs_lora.data.sample_data import create_sample_data

TINY = ["--model_path", "tiny", "--audio_tokenizer", "tiny"]


def _data(tmp_path, n):
    return create_sample_data(tmp_path / "data" / "d.json", n_samples=n)


def test_infer_token_cap_warning_is_one_line_for_the_run(tmp_path, capsys):
    """A cap of a few tokens stops no sample at the stream EOS: one summary line, not one per sample."""
    data = _data(tmp_path, 4)
    out = tmp_path / "gen"
    assert main(["infer", "--chatml_file", str(data), "--output_dir", str(out), *TINY, "--max_new_tokens", "4"]) == 0
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    capped = [r for r in document["samples"] if not r["stopped"]]
    assert len(capped) >= 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "token cap" in line]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {len(capped)} of 4 samples")
