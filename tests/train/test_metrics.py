"""train.metrics: device-side loss meter, token counts, memory, metrics.jsonl life cycle, console lines."""

import json

import pytest
import torch
from transformers import TrainerControl, TrainerState

from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.train import metrics
from higgs_lora.train.loss import compute_loss
from higgs_lora.train.metrics import (
    CompactProgressCallback,
    LossMeter,
    MetricsJsonlCallback,
    batch_tokens,
    console_line,
    memory_gb,
)


@pytest.fixture(scope="module")
def forward(tiny_model_factory, tiny_dataset, tiny_config):
    model = tiny_model_factory()
    model.eval()
    inputs = DictCollator(build_collator(tiny_config))([tiny_dataset[0], tiny_dataset[1]])
    with torch.no_grad():
        return model(**inputs), inputs


def test_batch_tokens_counts_text_and_audio_columns_without_padding(forward, tiny_dataset):
    _, inputs = forward
    assert int(batch_tokens(inputs)) == sum(tiny_dataset.lengths()[:2])
    # padding is not counted: the shorter sample padded to the longer one adds nothing
    assert inputs["attention_mask"].numel() > int(inputs["attention_mask"].sum())


def test_accumulating_loss_parts_never_reads_the_device(forward, monkeypatch):
    """The per-micro-step path (loss parts + meter) must not sync with the host; only summary() may."""
    out, inputs = forward

    def sync(*args, **kwargs):
        raise AssertionError("host sync in the per-micro-step path")

    meter = LossMeter()
    with monkeypatch.context() as m:
        for name in ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__"):
            m.setattr(torch.Tensor, name, sync)
        for _ in range(3):
            parts = compute_loss(out, inputs["label_audio_ids"])
            meter.add(parts, parts.text_loss * 0 + 0.25, inputs)
    assert isinstance(meter.sums, torch.Tensor) and isinstance(meter.tokens, torch.Tensor)
    summary = meter.summary("cpu")
    assert summary["text_loss"] == pytest.approx(float(parts.text_loss), abs=1e-5)
    assert summary["audio_loss"] == pytest.approx(float(parts.audio_loss), abs=1e-5)
    assert summary["audio_loss_cb3"] == pytest.approx(float(parts.codebook_losses[3]), abs=1e-5)
    assert summary["consistency_loss"] == pytest.approx(0.25)
    assert summary["tokens_per_second"] > 0 and summary["samples_per_second"] > 0
    assert not meter  # summary() resets


def test_meter_rates_are_counts_over_wall_time(forward, monkeypatch):
    out, inputs = forward
    clock = [100.0, 102.0, 102.0]  # reset at creation, read by summary(), reset again
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: clock.pop(0))
    meter = LossMeter()
    parts = compute_loss(out, inputs["label_audio_ids"])
    meter.add(parts, None, inputs)
    meter.add(parts, None, inputs)
    summary = meter.summary("cpu")
    assert summary["samples_per_second"] == pytest.approx(4 / 2.0)
    assert summary["tokens_per_second"] == pytest.approx(2 * int(batch_tokens(inputs)) / 2.0, abs=0.1)
    assert summary["consistency_loss"] == 0.0


def test_throughput_clock_leaves_evaluation_and_saving_out(forward, monkeypatch):
    from higgs_lora.train.metrics import ThroughputClock

    out, inputs = forward
    now = [0.0]
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: now[0])
    meter = LossMeter()
    clock = ThroughputClock(meter)
    now[0] = 50.0  # model loading, data encoding...
    clock.on_train_begin(None, None, None)
    now[0] = 52.0
    meter.add(compute_loss(out, inputs["label_audio_ids"]), None, inputs)
    assert meter.summary("cpu")["samples_per_second"] == pytest.approx(2 / 2.0)
    with meter.paused():  # evaluation, then a checkpoint, after that log
        now[0] = 90.0
    now[0] = 94.0
    meter.add(compute_loss(out, inputs["label_audio_ids"]), None, inputs)
    assert meter.summary("cpu")["samples_per_second"] == pytest.approx(2 / 4.0)
    # an evaluation at a step that is not a logging step: micro-steps are pending, their time still counts
    now[0] = 96.0
    meter.add(compute_loss(out, inputs["label_audio_ids"]), None, inputs)
    with meter.paused():
        now[0] = 196.0
    now[0] = 198.0
    meter.add(compute_loss(out, inputs["label_audio_ids"]), None, inputs)
    assert meter.summary("cpu")["samples_per_second"] == pytest.approx(4 / 4.0)


def test_trainer_evaluates_and_saves_off_the_clock(monkeypatch, tmp_path):
    from higgs_lora.train import trainer as T

    paused = []

    class Meter(LossMeter):
        def paused(self):
            paused.append(True)
            return super().paused()

    def fake_eval_loop(self, *args, **kwargs):
        return type("R", (), {"metrics": {}})()

    monkeypatch.setattr(T.Trainer, "evaluation_loop", fake_eval_loop)
    monkeypatch.setattr(T.HiggsAudioTrainer, "_save_staged", lambda self, *a, **k: None)
    trainer = T.HiggsAudioTrainer.__new__(T.HiggsAudioTrainer)  # only the meters are needed
    trainer._train_meter, trainer._eval_meter = Meter(), LossMeter()
    trainer.evaluation_loop(None, "eval")
    trainer._save_checkpoint(None, None)
    assert paused == [True, True]


def test_eval_meter_weights_batches_by_size(forward):
    out, inputs = forward
    parts = compute_loss(out, inputs["label_audio_ids"])
    other = type(parts)(**{**vars(parts), "text_loss": parts.text_loss + 3.0})
    meter = LossMeter()
    meter.add(parts, None, inputs, weight=2.0)
    meter.add(other, None, inputs, weight=1.0)
    summary = meter.summary("cpu", prefix="eval_", rates=False)
    assert summary["eval_text_loss"] == pytest.approx(float(parts.text_loss) + 1.0, abs=1e-5)
    assert "tokens_per_second" not in summary and "text_loss" not in summary


def test_cpu_memory_follows_what_the_process_holds():
    """Bug caught: a CPU reading that does not track this process's resident memory (CUDA's counter, which
    reads 0 without CUDA, or a constant) would log a flat line while the run grows."""
    import mmap

    size, page = 384 * 2**20, mmap.PAGESIZE
    before = memory_gb("cpu")
    # A fresh anonymous mapping, every page written: new resident memory the heap cannot serve from pages
    # it already holds (a numpy array could reuse memory freed by an earlier test, and RSS would not move).
    held = mmap.mmap(-1, size)
    for offset in range(0, size, page):
        held[offset] = 1
    after = memory_gb("cpu")
    assert after - before > 0.3 and held[size - page] == 1
    held.close()


def test_cuda_memory_log_reads_the_peak_and_never_resets_it(monkeypatch):
    """CUDA has one peak counter per process. A log that reset it would make anyone measuring over
    several steps (gpu-check) read only what stayed resident after the last log, not the step's peak."""
    from fake_cuda_memory import FakeCudaMemory

    cuda = FakeCudaMemory().install(monkeypatch)
    cuda.allocate(3 * 2**30)  # a step's activations
    cuda.free(2 * 2**30)  # gone after backward: 1 GiB stays resident
    assert memory_gb("cuda:0") == 3.0
    assert memory_gb("cuda:0") == 3.0  # the next log still sees the run's peak
    assert cuda.resets == 0 and cuda.max_memory_allocated() == 3 * 2**30


# --- metrics.jsonl ---------------------------------------------------------------------------


def _state(step=0, zero=True):
    state = TrainerState()
    state.is_world_process_zero = zero
    state.global_step, state.epoch = step, 0.0
    return state


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fresh_run_starts_metrics_jsonl_anew(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in (1, 2, 3)))
    callback = MetricsJsonlCallback(path)
    callback.on_train_begin(None, _state(step=0), TrainerControl())
    assert path.read_text() == ""
    callback.on_log(None, _state(step=1), TrainerControl(), logs={"loss": 1.0})
    assert [r["step"] for r in _lines(path)] == [1]


def test_resumed_run_keeps_records_up_to_its_step_and_drops_later_ones(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": s, "loss": float(s)} for s in (1, 2, 3, 4)] + [{"step": 2, "eval_loss": 1.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 5, "lo')  # killed mid-line
    callback = MetricsJsonlCallback(path)
    callback.on_train_begin(None, _state(step=2, zero=False), TrainerControl())
    assert len(path.read_text().splitlines()) == 6  # other ranks never touch the file
    callback.on_train_begin(None, _state(step=2), TrainerControl())
    assert [(r["step"], "eval_loss" in r) for r in _lines(path)] == [(1, False), (2, False), (2, True)]
    callback.on_log(None, _state(step=3), TrainerControl(), logs={"loss": 3.5})
    assert [r["step"] for r in _lines(path)] == [1, 2, 2, 3]


# --- console ---------------------------------------------------------------------------------


LOGS = {
    "loss": 2.34567,
    "text_loss": 1.5,
    "audio_loss": 0.84,
    "audio_loss_cb0": 0.9,
    "consistency_loss": 0.0,
    "learning_rate": 4.5e-4,
    "grad_norm": 1.2345,
    "tokens_per_second": 12345.6,
    "samples_per_second": 3.2,
    "memory_gb": 12.5,
    "epoch": 0.5,
}


def test_console_line_is_compact():
    line = console_line(LOGS, 10, 200)
    assert line == (
        "step 10/200  loss 2.3457  text 1.5000  audio 0.8400  lr 4.50e-04  grad 1.234  tok/s 12,346  mem GB 12.50"
    )
    assert "cb0" not in line and "{" not in line  # per-codebook parts stay in metrics.jsonl / TensorBoard
    assert "consistency 0.2500" in console_line({**LOGS, "consistency_loss": 0.25}, 10, 200)
    assert console_line({"eval_loss": 2.0, "eval_text_loss": 1.0, "eval_audio_loss": 1.0, "epoch": 1.0}, 20, 200) == (
        "eval at step 20  loss 2.0000  text 1.0000  audio 1.0000"
    )
    assert console_line({"train_runtime": 3.0, "train_loss": 2.0}, 20, 20) is None


def test_progress_callback_writes_compact_lines_and_shows_loss_on_the_bar():
    callback = CompactProgressCallback()
    state = _state(step=0)
    state.max_steps = 200
    callback.on_train_begin(None, state, TrainerControl())
    written = []
    callback.training_bar.write = written.append
    state.global_step = 10
    callback.on_log(None, state, TrainerControl(), logs=dict(LOGS))
    callback.on_log(None, state, TrainerControl(), logs={"train_runtime": 1.0})
    assert written == [console_line(LOGS, 10, 200)]
    assert callback.training_bar.postfix == "loss=2.3457"
    callback.on_train_end(None, state, TrainerControl())
