"""scripts/launch_8xh200_training.sh: environment, flags, effective-batch line, --help without torchrun.

A stand-in interpreter (PYTHON=...) records how the script calls Python, so these tests start no
training; the real two-process launch is exercised by tests/train/test_ddp.py.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "scripts/launch_8xh200_training.sh"


@pytest.fixture
def recorder(tmp_path):
    """A fake interpreter: logs argv and the launch environment, then runs the real one unless it is torchrun."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
echo "ARGV $*" >> {log}
echo "ENV CVD=$CUDA_VISIBLE_DEVICES OMP=$OMP_NUM_THREADS IB=$NCCL_IB_DISABLE ALLOC=$PYTORCH_CUDA_ALLOC_CONF" >> {log}
[[ "$1" == "-m" ]] && exit 0
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    return fake, log


def _launch(fake, *args, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "CUDA_VISIBLE_DEVICES",
            "OMP_NUM_THREADS",
            "NCCL_IB_DISABLE",
            "PYTORCH_CUDA_ALLOC_CONF",
            "NPROC",
            "NNODES",
        )
    }
    return subprocess.run(
        ["bash", SCRIPT, *args],
        cwd=REPO,
        env={**base, "PYTHON": str(fake), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_answered_once_without_torchrun(recorder, flag):
    fake, log = recorder
    started = time.monotonic()
    proc = _launch(fake, "--train_data", "d.json", flag)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20
    calls = [line for line in log.read_text().splitlines() if line.startswith("ARGV")]
    assert calls == ["ARGV trainer/train.py --help"]  # one plain process, never torch.distributed.run
    assert proc.stdout.count("usage: train.py") == 1
    assert "NNODES" in proc.stdout and "--train_data" in proc.stdout and "launch: effective batch" not in proc.stdout


def test_design_environment_and_flags_with_overrides_passed_through(recorder):
    fake, log = recorder
    proc = _launch(
        fake,
        "--train_data",
        "d.json",
        "--batch_size=2",
        "--gradient_accumulation_steps",
        "8",
        "--num_epochs",
        "1",
        NPROC="2",
        NNODES="2",
        NODE_RANK="1",
        MASTER_ADDR="10.0.0.1",
        MASTER_PORT="29999",
    )
    assert proc.returncode == 0, proc.stderr
    argv, env = log.read_text().splitlines()
    assert argv.startswith(
        "ARGV -m torch.distributed.run --nproc_per_node=2 --nnodes=2 --node_rank=1 "
        "--master_addr=10.0.0.1 --master_port=29999 trainer/train.py "
    )
    # the design's flags first, the caller's after them (argparse: the last value wins)
    # checkpointing: the memory guard decides (auto, train's default), so the script passes nothing for it
    design = (
        "--batch_size 4 --gradient_accumulation_steps 4 --learning_rate 5e-4 --lora_r 64 --lora_alpha 128 "
        "--dataloader_num_workers 2 --mixed_precision auto"
    )
    assert argv.endswith(f"{design} --train_data d.json --batch_size=2 --gradient_accumulation_steps 8 --num_epochs 1")
    assert env == "ENV CVD=0,1 OMP=16 IB=0 ALLOC=max_split_size_mb:512"
    assert (
        "launch: effective batch = 2 per device x 8 accumulation x 2 processes x 2 nodes = 64 samples per "
        "optimizer step (node 1, master 10.0.0.1:29999)"
    ) in proc.stdout


def test_defaults_give_the_designs_effective_batch_and_the_callers_environment_wins(recorder):
    fake, log = recorder
    proc = _launch(
        fake, "--train_data", "d.json", OMP_NUM_THREADS="4", CUDA_VISIBLE_DEVICES="3,4,5,6,7,0,1,2", CHECKPOINTING="off"
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 per device x 4 accumulation x 8 processes x 1 nodes = 128 samples" in proc.stdout
    argv, env = log.read_text().splitlines()
    assert "--nproc_per_node=8 --nnodes=1 --node_rank=0 --master_addr=localhost --master_port=29500" in argv
    assert "--use_gradient_checkpointing off" in argv
    assert env.startswith("ENV CVD=3,4,5,6,7,0,1,2 OMP=4 ")


def test_token_budget_batches_are_described_as_such(recorder):
    fake, _ = recorder
    proc = _launch(fake, "--train_data", "d.json", "--max_tokens_per_batch", "16000", NPROC="2")
    assert proc.returncode == 0, proc.stderr
    assert (
        "launch: effective batch = up to 16000 padded tokens per device x 4 accumulation x 2 processes x 1 nodes "
        "per optimizer step (--max_tokens_per_batch; --batch_size ignored)"
    ) in proc.stdout
    assert "samples per optimizer step" not in proc.stdout
