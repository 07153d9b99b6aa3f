"""The pre-flight memory decision (pure, small capacities on the tiny data) and the recipe acting on it."""

import logging

import pytest

from higgs_lora.data.sample_data import create_sample_data
from higgs_lora.train import memory_guard as G
from higgs_lora.train.config import TrainConfig, read_run_config
from higgs_lora.train.memory_estimate import GIB, USABLE_FRACTION, estimate_memory, fits
from higgs_lora.train.model_shape import ModelShape, released_config
from higgs_lora.train.step_estimate import estimate_step


def _capacity_for(total_bytes: float, slack: float = 1.0) -> float:
    """A capacity whose usable share is `slack` times `total_bytes`."""
    return total_bytes * slack / USABLE_FRACTION


@pytest.fixture(scope="module")
def tiny_shape(tiny_config):
    return ModelShape.from_config(tiny_config.to_dict())


def _estimates(shape, sizes, batch, **kw):
    b, length = G.longest_batch(sizes, batch)
    return (
        estimate_memory(shape, b, length, checkpointing=False, weight_bytes=4, **kw),
        estimate_memory(shape, b, length, checkpointing=True, weight_bytes=4, **kw),
    )


def test_sizes_of_the_tiny_dataset(tiny_dataset):
    sizes = G.sample_sizes(tiny_dataset, indices=[3, 7])
    assert [s.index for s in sizes] == [3, 7]
    assert [s.length for s in sizes] == tiny_dataset.lengths()
    for size, sample in zip(sizes, tiny_dataset.samples):
        assert size.speaker == sample.speaker
        frames = tiny_dataset.codes(sample.ref_audio).shape[1] + tiny_dataset.codes(sample.target_audio).shape[1]
        assert size.seconds == pytest.approx(frames / 25)


def test_decision_fits_needs_checkpointing_or_stops_naming_the_longest_sample(tiny_dataset, tiny_shape):
    sizes = G.sample_sizes(tiny_dataset)
    plain, ckpt = _estimates(tiny_shape, sizes, 2, lora_r=8)
    assert ckpt.total < plain.total
    decide = lambda cap, **kw: G.decide_memory(tiny_shape, sizes, 2, cap, lora_r=8, weight_bytes=4, **kw)  # noqa: E731

    roomy = decide(_capacity_for(plain.total, 1.01))
    assert roomy.fits and not roomy.checkpointing and not roomy.turned_on_checkpointing
    assert roomy.estimate == plain

    tight = decide(_capacity_for((plain.total + ckpt.total) / 2))
    assert tight.fits and tight.checkpointing and tight.turned_on_checkpointing
    assert "turning activation checkpointing ON" in tight.message
    # asked for checkpointing already: nothing to turn on
    assert not decide(_capacity_for(ckpt.total, 1.01), checkpointing=True).turned_on_checkpointing

    full = decide(_capacity_for(ckpt.total, 0.99))
    assert not full.fits
    longest = max(sizes, key=lambda s: s.length)
    assert f"#{longest.index} (speaker {longest.speaker}, {longest.seconds:.1f} s of audio" in full.message
    assert "Settings that fit (with activation checkpointing): --batch_size 1" in full.message


def test_only_as_many_layers_as_the_batch_needs_are_checkpointed():
    """Released shape, 4 x (30 s + 30 s) samples on an 80 GB card: more than no checkpointing allows, far
    less than checkpointing all 28 layers saves. The guard checkpoints the fewest layers that fit."""
    shape = ModelShape.from_config(released_config())
    sizes = [G.SampleSize(i, f"s{i}", 60.0, 2564) for i in range(4)]
    capacity = 80 * GIB
    plain = estimate_memory(shape, 4, 2564, 64)
    every = estimate_memory(shape, 4, 2564, 64, checkpointing=True)
    assert not fits(plain, capacity) and every.total < 0.5 * USABLE_FRACTION * capacity
    decision = G.decide_memory(shape, sizes, 4, capacity, lora_r=64)
    k = decision.checkpointed_layers
    assert decision.fits and decision.turned_on_checkpointing and 0 < k < shape.layers
    assert decision.estimate == estimate_memory(shape, 4, 2564, 64, checkpointing=k)
    assert not fits(estimate_memory(shape, 4, 2564, 64, checkpointing=k - 1), capacity)  # the fewest
    assert f"turning activation checkpointing ON for {k} of 28 decoder layers" in decision.message
    # fewer layers recomputed: a cheaper step than checkpointing every layer
    assert (
        estimate_step(shape, 4, 2564, 64, checkpointing=k).flops
        < estimate_step(shape, 4, 2564, 64, checkpointing=True).flops
    )
    # --use_gradient_checkpointing on still checkpoints every layer
    assert G.decide_memory(shape, sizes, 4, capacity, lora_r=64, checkpointing=True).checkpointed_layers == 28
    # a card with room for the plain step: none
    assert G.decide_memory(shape, sizes, 4, 2 * plain.total / USABLE_FRACTION, lora_r=64).checkpointed_layers == 0


def test_partial_checkpointing_estimate_between_none_and_all():
    shape = ModelShape.from_config(released_config())
    totals = [estimate_memory(shape, 4, 2000, 64, checkpointing=k).total for k in range(shape.layers + 1)]
    assert totals[0] == estimate_memory(shape, 4, 2000, 64).total
    assert totals[-1] == estimate_memory(shape, 4, 2000, 64, checkpointing=True).total
    # each layer checkpointed saves memory (backward frees the plain layers before recomputing the first ones)
    assert all(a > b for a, b in zip(totals[1:-1], totals[2:-1])) and totals[0] > totals[1]
    with pytest.raises(ValueError, match="0..28"):
        estimate_memory(shape, 4, 2000, 64, checkpointing=29)


def test_suggested_settings_really_fit():
    # released shape on an 80 GB card: six ordinary samples and two very long ones, batch 4, checkpointing
    shape = ModelShape.from_config(released_config())
    sizes = [G.SampleSize(i, f"s{i}", 20.0 + i, 700 + 25 * i) for i in range(6)]
    sizes += [G.SampleSize(6, "long", 240.0, 6500), G.SampleSize(7, "longer", 300.0, 8000)]
    capacity = 40 * GIB
    decision = G.decide_memory(shape, sizes, 4, capacity, lora_r=64)
    assert not decision.fits
    assert decision.message.index("#7 (speaker longer, 300.0 s") < decision.message.index("#6 (speaker long, 240.0 s")
    assert "--max_audio_seconds 25 (drops 2 of 8 samples)" in decision.message
    kept = [s for s in sizes if s.seconds <= 25]
    assert G.decide_memory(shape, kept, 4, capacity, lora_r=64).fits
    batch = int(decision.message.split("--batch_size ")[1].split()[0])
    assert G.decide_memory(shape, sizes, batch, capacity, lora_r=64, checkpointing=True).fits
    assert not G.decide_memory(shape, sizes, batch + 1, capacity, lora_r=64, checkpointing=True).fits


def test_token_budget_batches_are_checked_at_the_longest_sample_with_its_batch_mates():
    # --max_tokens_per_batch: batch_size is ignored; the peak batch is the longest sample plus as many
    # others as the budget allows at its length (data.sampler's rule), not batch_size samples.
    shape = ModelShape.from_config(released_config())
    sizes = [G.SampleSize(i, f"s{i}", 20.0 + i, 700 + 25 * i) for i in range(6)]
    sizes += [G.SampleSize(6, "long", 240.0, 6500), G.SampleSize(7, "longer", 300.0, 8000)]
    assert G.longest_batch(sizes, 4, max_tokens=16_000) == (2, 8000)
    assert G.longest_batch(sizes, 4, max_tokens=5_000) == (1, 8000)  # longer than the budget: a batch of its own
    assert G.longest_batch(sizes[:3], 1, max_tokens=100_000) == (3, 750)  # never more samples than there are
    roomy = G.decide_memory(shape, sizes, 1, 1000 * GIB, lora_r=64, max_tokens=16_000)
    assert (roomy.estimate.batch_size, roomy.estimate.seq_len) == (2, 8000)
    capacity = _capacity_for(estimate_memory(shape, 2, 8000, checkpointing=True).total, 0.99)
    tight = G.decide_memory(shape, sizes, 4, capacity, lora_r=64, max_tokens=16_000)
    assert not tight.fits and "--max_tokens_per_batch 8000" in tight.message and "--batch_size" not in tight.message
    assert G.decide_memory(shape, sizes, 4, capacity, lora_r=64, max_tokens=8000).fits


def test_max_audio_seconds_drops_and_lists_long_samples(sample_samples, caplog):
    from higgs_lora.data.audio import audio_duration

    seconds = [audio_duration(s.ref_audio) + audio_duration(s.target_audio) for s in sample_samples]
    limit = sorted(seconds)[len(seconds) // 2]
    with caplog.at_level(logging.WARNING, logger="higgs_lora.train.memory_guard"):
        kept, indices = G.drop_long_samples(sample_samples, limit)
    long = [i for i, s in enumerate(seconds) if s > limit]
    assert long and indices == [i for i in range(len(seconds)) if i not in long]
    assert kept == [sample_samples[i] for i in indices]
    assert f"dropped {len(long)} of {len(seconds)}" in caplog.text
    for i in long:
        assert f"#{i} (speaker {sample_samples[i].speaker}" in caplog.text
    assert G.drop_long_samples(sample_samples, None) == (list(sample_samples), list(range(len(seconds))))
    with pytest.raises(ValueError, match="drops every sample"):
        G.drop_long_samples(sample_samples, 0.01)


def test_capacity_from_the_environment(monkeypatch):
    monkeypatch.setenv(G.CAPACITY_ENV, "1.5")
    assert G.gpu_capacity("cpu") == 1.5 * GIB
    monkeypatch.setenv(G.CAPACITY_ENV, "lots")
    with pytest.raises(ValueError, match=G.CAPACITY_ENV):
        G.gpu_capacity(None)
    monkeypatch.delenv(G.CAPACITY_ENV)
    assert G.gpu_capacity("cpu") is None


# --- the recipe --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guard_data(tmp_path_factory, tiny_config, tiny_tokenizer, tiny_codec):
    from higgs_lora.data.dataset import VoiceCloningDataset
    from higgs_lora.data.validate import load_samples

    path = create_sample_data(tmp_path_factory.mktemp("guard") / "d.json", n_samples=2)
    dataset = VoiceCloningDataset(load_samples(path), tiny_tokenizer, tiny_codec)
    shape = ModelShape.from_config(tiny_config.to_dict())
    return path, _estimates(shape, G.sample_sizes(dataset), 2, lora_r=4)


def _cfg(path, out, **kw):
    return TrainConfig(
        train_data=str(path),
        output_dir=str(out),
        base_model="tiny",
        audio_tokenizer="tiny",
        batch_size=2,
        gradient_accumulation_steps=1,
        max_steps=1,
        logging_steps=1,
        lora_r=4,
        lora_alpha=8,
        save_steps=10**9,
        dataloader_num_workers=0,
        report_to="none",
        **kw,
    )


def test_recipe_turns_checkpointing_on_when_memory_is_short(guard_data, tmp_path, monkeypatch, caplog):
    from higgs_lora.train.recipe import train

    path, (plain, ckpt) = guard_data
    monkeypatch.setenv(G.CAPACITY_ENV, repr(_capacity_for((plain.total + ckpt.total) / 2) / GIB))
    with caplog.at_level(logging.WARNING, logger="higgs_lora.train.memory_guard"):
        out = train(_cfg(path, tmp_path / "out"))
    assert "turning activation checkpointing ON for 1 of 2 decoder layers" in caplog.text
    settings = read_run_config(out)
    assert settings["use_gradient_checkpointing"] == "on"  # what ran, not "auto"
    assert settings["checkpointed_layers"] == 1  # the tiny model's first layer: enough for this capacity


def test_recipe_stops_before_training_when_nothing_fits(guard_data, tmp_path, monkeypatch):
    from higgs_lora.train.recipe import train

    path, (_, ckpt) = guard_data
    monkeypatch.setenv(G.CAPACITY_ENV, repr(_capacity_for(ckpt.total, 0.5) / GIB))
    with pytest.raises(ValueError, match=r"does not fit in GPU memory.*Longest samples: #\d"):
        train(_cfg(path, tmp_path / "out"))
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "mode, capacity, expected",
    [
        ("auto", "plenty", 0),
        ("auto", "between", 1),
        ("on", "plenty", 2),
        ("on", "between", 2),
        ("off", "plenty", 0),
        ("off", "between", ValueError),
        ("auto", None, 0),
        ("on", None, 2),
        ("off", None, 0),
    ],
)
def test_checkpointing_mode_auto_on_off(
    guard_data, tiny_config, tiny_tokenizer, tiny_codec, monkeypatch, mode, capacity, expected
):
    """auto: the guard decides how many of the tiny model's 2 layers; on: all; off: none, and a batch that
    needs it stops the run naming the flag. No capacity (CPU): auto means off."""
    from higgs_lora.data.dataset import VoiceCloningDataset
    from higgs_lora.data.validate import load_samples

    path, (plain, ckpt) = guard_data
    if capacity is None:
        monkeypatch.delenv(G.CAPACITY_ENV, raising=False)
    else:
        total = plain.total * 4 if capacity == "plenty" else (plain.total + ckpt.total) / 2
        monkeypatch.setenv(G.CAPACITY_ENV, repr(_capacity_for(total) / GIB))
    dataset = VoiceCloningDataset(load_samples(path), tiny_tokenizer, tiny_codec)
    cfg = _cfg(path, "unused", use_gradient_checkpointing=mode)
    if expected is ValueError:
        with pytest.raises(ValueError, match="--use_gradient_checkpointing off"):
            G.check_memory(cfg, tiny_config, dataset, "cpu", 4)
    else:
        assert G.check_memory(cfg, tiny_config, dataset, "cpu", 4) == expected


def test_old_boolean_settings_still_read():
    assert G.checkpointing_mode(True) == "on" and G.checkpointing_mode(False) == "auto"
    with pytest.raises(ValueError, match="auto, on or off"):
        G.checkpointing_mode("sometimes")
