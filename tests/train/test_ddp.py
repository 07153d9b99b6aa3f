"""DDP on CPU (gloo, two processes): equivalence with one process, identical ranks, rank-0-only output,
and no hang when a rank's batch has no audio.

Why the single-process run can match exactly: the loss of a micro-batch is a token-weighted mean over
that micro-batch, and Trainer/DDP average micro-batch losses with equal weights. So two runs with the
same global batch take the same step only if every sample weighs the same in every grouping. Here every
sample has 3 text targets and a 1.00 s target clip (same audio target count), so any micro-batch mean is
the mean of its per-sample losses, and the step is the mean over all 8 samples whatever the grouping.
With 8 samples and a global batch of 8, each step sees every sample once, so DistributedSampler's split
(rank r takes every other index of a shuffled order) and the single process's RandomSampler order do not
matter either. What remains is float32 reassociation (different padding, different reduction order),
which Adam magnifies where a gradient is near zero (the update is g / (sqrt(v) + eps), about +-lr for
any g >> eps): measured 2.2e-6 at most on weights of ~0.1 after two steps at lr 1e-3, exactly what two
single-process groupings of the same global batch (4 x 2 against 2 x 4) differ by. The test allows 1e-5,
and checks that a run with a different global batch lands far outside it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from higgs_lora.train.recipe import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
COMMON = [
    "--base_model",
    "tiny",
    "--audio_tokenizer",
    "tiny",
    "--max_steps",
    "2",
    "--lora_dropout",
    "0",
    "--warmup_ratio",
    "0",
    "--learning_rate",
    "1e-3",
    "--dataloader_num_workers",
    "0",
    "--logging_steps",
    "1",
    "--save_steps",
    "1000",
]

# Each process dumps its own LoRA weights after training (test-only: loaded through PYTHONPATH by every
# worker that torchrun starts; the launcher process has no RANK and skips it).
SITECUSTOMIZE = """
import os
if os.environ.get("HIGGS_LORA_TEST_DUMP") and "RANK" in os.environ:
    from safetensors.torch import save_file
    from higgs_lora.train import trainer as _trainer

    _train = _trainer.HiggsAudioTrainer.train

    def train(self, *args, **kwargs):
        result = _train(self, *args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        weights = {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if "lora_" in n}
        save_file(weights, os.path.join(os.environ["HIGGS_LORA_TEST_DUMP"], "rank%s.safetensors" % os.environ["RANK"]))
        return result

    _trainer.HiggsAudioTrainer.train = train
"""


def _equal_weight_data(folder: Path) -> Path:
    """8 samples, 4 speakers; reference clips of different lengths, every target clip exactly 1.00 s."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(8):
        t = np.arange(24000) / 24000
        ref = (0.3 * np.sin(2 * np.pi * (150 + 40 * i) * np.arange(int(24000 * (1.2 + 0.1 * i))) / 24000)).astype(
            np.float32
        )
        target = (0.3 * np.sin(2 * np.pi * (200 + 30 * i) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        sf.write(folder / f"ref{i}.wav", ref, 24000)
        sf.write(folder / f"tgt{i}.wav", target, 24000)
        records.append(
            {
                "ref_text": f"reference number {i}",
                "ref_audio": f"ref{i}.wav",
                "target_text": "short" if i % 2 else "a somewhat longer target sentence",
                "target_audio": f"tgt{i}.wav",
                "speaker": f"spk{i % 4}",
            }
        )
    path = folder / "data.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _free_port() -> str:
    import socket

    with socket.socket() as sock:  # fixed ports collide with other torchrun jobs on the machine
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.timeout(300)
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    data = _equal_weight_data(tmp_path / "data")
    hook, dumps, ddp_out = tmp_path / "hook", tmp_path / "dumps", tmp_path / "ddp"
    hook.mkdir()
    dumps.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(
        os.environ,
        NPROC="2",
        OMP_NUM_THREADS="1",
        MASTER_PORT=_free_port(),
        PYTHON=sys.executable,
        CHECKPOINTING="0",
        HIGGS_LORA_TEST_DUMP=str(dumps),
        PYTHONPATH=os.pathsep.join([str(hook), str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    # 2 per device x 2 accumulation x 2 processes = 8 = the whole data set per step.
    proc = subprocess.run(
        [
            "bash",
            "scripts/launch_8xh200_training.sh",
            "--train_data",
            str(data),
            "--output_dir",
            str(ddp_out),
            "--batch_size",
            "2",
            "--gradient_accumulation_steps",
            "2",
            "--report_to",
            "tensorboard",
            "--eval_data",
            str(data),
            "--eval_steps",
            "1",
            *COMMON,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    # The same global batch in one process, grouped differently: 4 per micro-batch x 2 accumulation.
    def run_single(batch_size, accumulation, **extra):
        out = tmp_path / f"single_{batch_size}x{accumulation}"
        train(
            TrainConfig(
                train_data=str(data),
                output_dir=str(out),
                base_model="tiny",
                audio_tokenizer="tiny",
                **extra,
                batch_size=batch_size,
                gradient_accumulation_steps=accumulation,
                max_steps=2,
                lora_dropout=0.0,
                warmup_ratio=0.0,
                learning_rate=1e-3,
                dataloader_num_workers=0,
                logging_steps=1,
                save_steps=1000,
                report_to="none",
            )
        )
        return out

    single_out = run_single(4, 2, eval_data=str(data), eval_steps=1)

    rank0, rank1 = load_file(dumps / "rank0.safetensors"), load_file(dumps / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and rank0
    for k in rank0:  # DDP keeps the replicas bit-identical
        assert torch.equal(rank0[k], rank1[k]), k
    ddp, single = load_file(ddp_out / "adapter_model.safetensors"), load_file(single_out / "adapter_model.safetensors")
    assert ddp.keys() == single.keys()
    worst = max(float((ddp[k] - single[k]).abs().max()) for k in ddp)
    moved = max(float(v.abs().max()) for k, v in single.items() if "lora_B" in k)
    assert moved > 1e-3  # the runs really trained (lora_B starts at 0)
    assert worst < 1e-5, worst
    # control: half the global batch (4 samples per step) is a different run, far outside the tolerance
    half = load_file(run_single(2, 2) / "adapter_model.safetensors")
    assert max(float((half[k] - single[k]).abs().max()) for k in half) > 1e-4
    ddp_metrics = [json.loads(line) for line in (ddp_out / "metrics.jsonl").read_text().splitlines()]
    single_metrics = [json.loads(line) for line in (single_out / "metrics.jsonl").read_text().splitlines()]
    # held-out loss under DDP: each process evaluates half the file, the parts are all-reduced
    ddp_eval, single_eval = ([r for r in m if "eval_loss" in r] for m in (ddp_metrics, single_metrics))
    assert [r["step"] for r in ddp_eval] == [r["step"] for r in single_eval] == [1, 2]
    for a, b in zip(ddp_eval, single_eval):
        for key in ("eval_loss", "eval_text_loss", "eval_audio_loss", "eval_audio_loss_cb7"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
        assert a["eval_loss"] == pytest.approx(a["eval_text_loss"] + a["eval_audio_loss"], abs=1e-4)
    ddp_metrics, single_metrics = ([r for r in m if "loss" in r] for m in (ddp_metrics, single_metrics))
    assert [r["step"] for r in ddp_metrics] == [1, 2]
    for a, b in zip(ddp_metrics, single_metrics):
        for key in ("loss", "text_loss", "audio_loss", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
        # throughput counts both processes' samples: the whole data set per step
        assert a["samples_per_second"] > 0
    assert [r["epoch"] for r in ddp_metrics] == [1.0, 2.0]

    # Only rank 0 writes and prints: one TensorBoard writer, one start and end block, one "adapter saved".
    assert len(list((ddp_out / "runs").rglob("events.out.tfevents.*"))) == 1
    out = proc.stdout
    assert "launch: effective batch = 2 per device x 2 accumulation x 2 processes x 1 nodes = 8" in out
    assert out.count("higgs-lora train\n") == 1 and out.count("higgs-lora train: done") == 1
    assert "2 per device x 2 accumulation x 2 processes = 8 samples per step" in out
    assert "1 step per epoch; 2 steps = 2.00 epochs" in out
    assert out.count("adapter saved to") == 1
    assert (out + proc.stderr).count("step 1/2 ") == 1 and (out + proc.stderr).count("eval at step 1 ") == 1


@pytest.mark.timeout(200)
@pytest.mark.parametrize("heads", ["labelled", "full"])  # train's path (heads at labelled rows) and upstream's
def test_a_rank_with_a_text_only_batch_does_not_hang(sample_data_path, heads):
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            _free_port(),
            "tests/train/ddp_text_only_worker.py",
            str(sample_data_path),
            heads,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = re.findall(r"rank (\d) done: max diff to rank 0 (\S+); moved ([0-9.e+-]+?)(?=rank|\s|$)", proc.stdout)
    assert sorted(rank for rank, _, _ in done) == ["0", "1"], proc.stdout[-2000:]
    for _, diff, moved in done:
        assert diff == "0"  # identical replicas after three steps
        assert float(moved) > 1e-3  # and they trained
