"""`higgs-lora bench` at a toy shape: every figure present with its inputs, and the project's step beating today's."""

import json

import pytest

from higgs_lora.bench import pipeline
from higgs_lora.bench.run import GOALS
from higgs_lora.cli import main

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from higgs_lora.data.codes import TinyCodec

    out = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as mp:
        # The real tokenizer class takes minutes to build and encode on a shared CPU; the command uses it.
        mp.setattr(pipeline, "random_higgs_codec", TinyCodec)
        code = main(["bench", "--shape", "test", "--repeats", "1", "--output", str(out)])
    assert code in (0, 1)  # 1: a goal missed, as the toy shape does; never an error
    return json.loads(out.read_text())


def test_every_figure_is_reported_with_its_goal_and_inputs(report):
    for name in GOALS:
        assert name in report["goals"] and isinstance(report[name]["value"], (int, float))
    inputs = report["step_inputs"]
    assert inputs["text_targets"] == 3 * inputs["batch"]  # <|audio_out_bos|>, <|audio_eos|>, <|eot_id|>
    assert inputs["collator_positions"] > 0 and inputs["audio_heads"] == "8x1026"
    assert report["machine"]["cpu"]
    assert "TinyCodec" in report["cache_speedup"]["codec"]


def test_the_project_step_beats_todays(report):
    today, project = report["today_step"], report["project_step"]
    assert abs(today["loss"] - project["loss"]) <= 1e-4
    assert project["logits_bytes"] * 10 < today["logits_bytes"]
    assert today["logits_tensors"] >= 10  # forward, fp32 copy, loss copies, backward: all B×T×V
    assert project["flops"] < today["flops"]
    assert project["peak_live_bytes"] < today["peak_live_bytes"]
    assert project["cast_bytes"] < today["cast_bytes"]
    syncs = report["host_syncs_per_microstep"]
    assert syncs["project_code"] == 0 < syncs["today_project_code"]  # Trainer's NaN filter, gone
    # boson's merge and DualFFN masks: counted in today's step, gone from the project's (train.layout/decoder)
    assert syncs["model_code"] == 0 < syncs["today_model_code"]


def test_checkpointing_holds_less_for_the_backward(report):
    ratio = report["checkpointing_memory_ratio"]
    assert ratio["with_checkpointing_bytes"] < ratio["held_for_backward_bytes"]
