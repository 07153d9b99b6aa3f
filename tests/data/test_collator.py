"""The collator factory: settings from the model config, Whisper only where the model has a tower, forward kwargs."""

import copy
import inspect

import pytest
import torch
from boson_multimodal.model.higgs_audio import HiggsAudioModel

from higgs_lora.data.collator import MODEL_INPUT_KEYS, DictCollator, batch_to_inputs, build_collator

EOS = 1025
BOS = 1024


def _segments(batch, field):
    """Split a (C, total) audio-out tensor into its per-segment parts using audio_out_ids_start."""
    tensor = getattr(batch, field)
    bounds = batch.audio_out_ids_start.tolist() + [tensor.shape[1]]
    return [tensor[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def test_collator_settings_come_from_the_config(tiny_config):
    collator = build_collator(tiny_config)
    assert collator.use_delay_pattern is True
    assert collator.audio_num_codebooks == 8
    assert collator.audio_in_token_id == tiny_config.audio_in_token_idx
    assert collator.audio_out_token_id == tiny_config.audio_out_token_idx
    assert collator.audio_stream_bos_id == BOS and collator.audio_stream_eos_id == EOS
    assert collator.pad_token_id == tiny_config.pad_token_id
    assert collator.encode_whisper_embed is False and collator.whisper_processor is None
    assert collator.round_to == 1

    changed = copy.deepcopy(tiny_config)
    changed.use_delay_pattern = False
    changed.audio_num_codebooks = 4
    changed.audio_out_token_idx = 11
    changed.audio_in_token_idx = 12
    changed.audio_stream_bos_id = 2000
    changed.audio_stream_eos_id = 2001
    changed.pad_token_id = 13
    other = build_collator(changed)
    assert other.use_delay_pattern is False
    assert other.audio_num_codebooks == 4
    assert (other.audio_out_token_id, other.audio_in_token_id) == (11, 12)
    assert (other.audio_stream_bos_id, other.audio_stream_eos_id, other.pad_token_id) == (2000, 2001, 13)
    assert tiny_config.use_delay_pattern is True  # the original is untouched


def test_config_changes_change_the_collated_batch(tiny_dataset, tiny_config):
    delayed = build_collator(tiny_config)([tiny_dataset[0]])
    changed = copy.deepcopy(tiny_config)
    changed.use_delay_pattern = False
    changed.audio_num_codebooks = 4
    plain = build_collator(changed)([tiny_dataset[0]])

    assert delayed.label_audio_ids.shape[0] == 8 and plain.label_audio_ids.shape[0] == 4
    # delay pattern adds C - 1 columns to each of the two segments
    assert delayed.label_audio_ids.shape[1] - plain.label_audio_ids.shape[1] == 2 * 7
    # without the delay every codebook starts its codes in the same column
    target = _segments(plain, "label_audio_ids")[1]
    starts = [int(torch.nonzero(row != -100)[0]) for row in target]
    assert starts == [1, 1, 1, 1]


def test_whisper_follows_the_config_and_forcing_it_without_a_tower_is_refused(tiny_config):
    with_tower = copy.deepcopy(tiny_config)
    with_tower.encode_whisper_embed = True
    with_tower.skip_audio_tower = False
    collator = build_collator(with_tower)  # a default feature extractor, built offline
    assert collator.encode_whisper_embed is True
    fe = collator.whisper_processor.feature_extractor
    assert fe.sampling_rate == 16000 and fe.feature_size == with_tower.audio_encoder_config.num_mel_bins

    no_tower = copy.deepcopy(tiny_config)
    no_tower.encode_whisper_embed = True
    no_tower.skip_audio_tower = True
    collator = build_collator(no_tower, whisper_processor=object())
    assert collator.encode_whisper_embed is False and collator.whisper_processor is None
    # the released model's shape: no tower; forcing Whisper on is refused with the reason
    with pytest.raises(ValueError, match="no audio tower"):
        build_collator(tiny_config, encode_whisper_embed=True)
    with pytest.raises(ValueError, match="training without them"):
        build_collator(with_tower, encode_whisper_embed=False)
    assert build_collator(tiny_config, encode_whisper_embed=False).encode_whisper_embed is False


def test_batch_to_inputs_keys_are_forward_parameters(tiny_dataset, tiny_config):
    params = inspect.signature(HiggsAudioModel.forward).parameters
    assert set(MODEL_INPUT_KEYS) <= set(params)
    batch = build_collator(tiny_config)([tiny_dataset[0], tiny_dataset[1]])
    inputs = batch_to_inputs(batch)
    assert set(inputs) <= set(params)
    # whisper features are None for this model and are left out; every audio-out field is present
    assert {
        "input_ids",
        "attention_mask",
        "audio_out_ids",
        "audio_out_ids_start",
        "label_ids",
        "label_audio_ids",
    } <= set(inputs)
    assert "audio_features" not in inputs
    assert all(v is not None for v in inputs.values())
    assert inputs["label_audio_ids"] is batch.label_audio_ids  # no deep copy
    assert set(DictCollator(build_collator(tiny_config))([tiny_dataset[0]])) == set(
        batch_to_inputs(build_collator(tiny_config)([tiny_dataset[0]]))
    )
