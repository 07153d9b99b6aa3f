"""The torchrun launch script: two CPU processes (gloo DDP) train the tiny model end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from higgs_lora.data.sample_data import create_sample_data

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_launch_script_runs_two_process_ddp(tmp_path):
    data = create_sample_data(tmp_path / "data.json", n_samples=4)
    out = tmp_path / "run"
    env = dict(os.environ, NPROC="2", OMP_NUM_THREADS="1", MASTER_PORT="29561", PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", "scripts/launch_8xh200_training.sh", "--train_data", str(data), "--output_dir", str(out),
         "--base_model", "tiny", "--audio_tokenizer", "tiny", "--max_steps", "2", "--batch_size", "1",
         "--gradient_accumulation_steps", "1", "--dataloader_num_workers", "0", "--logging_steps", "1",
         "--report_to", "none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = load_file(out / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in weights.items())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # One record per step from rank 0 only (a second writer would duplicate steps).
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        # Trainer averages `loss` over both processes; the logged parts must be averaged the same way.
        assert r["loss"] == pytest.approx(r["text_loss"] + r["audio_loss"], abs=2e-3)
