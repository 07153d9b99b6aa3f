"""`higgs-lora plan --train_data` and the GPU table: lengths from the data file, cards people have."""

import pytest

from higgs_lora.cli import main
from higgs_lora.constants import FRAMES_PER_SECOND
from higgs_lora.train.data_sizes import data_sizes, seconds_to_columns
from higgs_lora.train.gpus import GPUS, gpu_with_memory
from higgs_lora.train.model_shape import load_config_dict
from higgs_lora.train.plan import make_plan


def test_seconds_to_columns_agrees_with_the_dataset(tiny_dataset, tiny_tokenizer):
    from higgs_lora.data.sample import tokenize_chatml

    assert seconds_to_columns(30, 8) == 759  # 750 frames + stream BOS/EOS + 7 delay columns
    for i, sample in enumerate(tiny_dataset.samples):
        text, _, paths = tokenize_chatml(tiny_dataset.chatml(sample), tiny_tokenizer)
        seconds = [tiny_dataset.codes(p).shape[1] / FRAMES_PER_SECOND for p in paths]
        # each clip replaces its one placeholder token
        assert tiny_dataset.lengths()[i] == len(text) + sum(seconds_to_columns(s, 8) - 1 for s in seconds)


def test_lengths_from_file_headers_match_the_dataset_built_from_codes(
    sample_data_path, sample_samples, tiny_tokenizer, tiny_codec, tmp_path
):
    """Two paths to the same number: the plan reads text and audio durations, the dataset tokenizes and
    encodes. A clip's frame count from its duration may differ from the codec's by one frame."""
    from higgs_lora.data.dataset import VoiceCloningDataset

    codebooks = load_config_dict("tiny")["audio_num_codebooks"]
    planned = data_sizes(str(sample_data_path), "tiny", codebooks)
    assert planned.text_tokens_exact
    encoded = VoiceCloningDataset(sample_samples, tiny_tokenizer, tiny_codec, cache_dir=tmp_path / "c").lengths()
    assert len(planned.sizes) == len(encoded)
    for size, real in zip(planned.sizes, encoded):
        assert abs(size.length - real) <= 2, (size, real)  # two clips, at most one frame each
    assert max(s.length for s in planned.sizes) >= max(encoded) - 2


def test_without_the_tokenizer_text_is_counted_as_an_upper_bound(sample_data_path, monkeypatch):
    import higgs_lora.train.data_sizes as D

    codebooks = load_config_dict("tiny")["audio_num_codebooks"]
    exact = data_sizes(str(sample_data_path), "tiny", codebooks)
    monkeypatch.setattr(D, "_tokenizer_or_none", lambda name: None)
    bound = data_sizes(str(sample_data_path), "tiny", codebooks)
    assert not bound.text_tokens_exact
    assert all(b.length >= e.length for b, e in zip(bound.sizes, exact.sizes))
    assert "upper bound" in "\n".join(bound.describe())


def test_plan_sizes_the_sequence_from_the_data(sample_data_path, capsys):
    codebooks = load_config_dict("tiny")["audio_num_codebooks"]
    longest = data_sizes(str(sample_data_path), "tiny", codebooks).longest()
    assert main(["plan", "--base_model", "tiny", "--train_data", str(sample_data_path), "--batch_size", "2"]) == 0
    out = capsys.readouterr().out
    assert f"planning with --seq_len {longest.length:,}" in out
    assert f"micro-batch: 2 x {longest.length} positions" in out
    assert "data: 18 samples" in out and "longest" in out
    # An explicit --seq_len still wins.
    assert main(["plan", "--base_model", "tiny", "--train_data", str(sample_data_path), "--seq_len", "100"]) == 0
    assert "4 x 100 positions" in capsys.readouterr().out


@pytest.mark.parametrize(
    "gpu,fits",
    [
        ("rtx4090", False),
        ("rtx5090", False),
        ("l40s", False),
        ("a100-40gb", False),
        ("a100-80gb", True),
        ("h100", True),
        ("h200", True),
    ],
)
def test_the_cards_people_have(gpu, fits, capsys):
    """Released model, batch 4 x 1,070 positions, r=64, no checkpointing: 63 GiB measured on an H200
    (train.calibration.CALIBRATION_POINTS), so only the 80 GB and larger cards hold it."""
    rc = main(["plan", "--gpu", gpu, "--batch_size", "4", "--seq_len", "1070"])
    out = capsys.readouterr().out
    assert rc == (0 if fits else 1)
    assert GPUS[gpu]["name"] in out and ("DOES NOT FIT" not in out) == fits


def test_gpu_memory_gb_replaces_the_cards_memory(capsys):
    assert main(["plan", "--gpu", "rtx4090", "--gpu_memory_gb", "200", "--batch_size", "4", "--seq_len", "1070"]) == 0
    assert "200 GiB card" in capsys.readouterr().out
    small = make_plan(load_config_dict("tiny"), 1, 100, 8, gpu=gpu_with_memory("h200", 1e-4))
    assert small.warnings and "0.0001 GiB" in small.warnings[0]
    assert main(["plan", "--gpu_memory_gb", "-1"]) == 2
