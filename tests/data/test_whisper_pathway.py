"""The second (Whisper) pathway: on for a model whose config has an audio tower, refused for the released shape.

A tiny HiggsAudioConfig with `skip_audio_tower=False` and a tiny Whisper encoder stands in for a
tower model; the feature extractor is Whisper's default one, built offline.
"""

import copy

import numpy as np
import pytest
import torch
from boson_multimodal.data_types import AudioContent, ChatMLSample, Message
from boson_multimodal.model.higgs_audio import HiggsAudioModel
from boson_multimodal.model.higgs_audio.configuration_higgs_audio import HiggsAudioEncoderConfig

from higgs_lora.data.audio import load_audio
from higgs_lora.data.collator import DictCollator, build_collator, make_chatml_sample
from higgs_lora.data.dataset import VoiceCloningDataset
from higgs_lora.data.sample import tokenize_chatml
from higgs_lora.data.whisper import WHISPER_SAMPLE_RATE, encodes_whisper
from higgs_lora.model.tiny import build_config
from higgs_lora.train.loss import compute_loss


@pytest.fixture(scope="module")
def tower_config():
    config = build_config()
    config.skip_audio_tower = False
    config.encode_whisper_embed = True
    config.audio_encoder_config = HiggsAudioEncoderConfig(
        num_mel_bins=80, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16
    )
    return config


@pytest.fixture(scope="module")
def tower_model(tower_config):
    torch.manual_seed(0)
    return HiggsAudioModel(copy.deepcopy(tower_config)).eval()


def test_released_shape_has_no_whisper_and_refuses_to_force_it(tiny_config):
    assert not encodes_whisper(tiny_config)
    with pytest.raises(ValueError, match="no audio tower .*discrete codes"):
        build_collator(tiny_config, encode_whisper_embed=True)


def test_dataset_supplies_16k_waveforms_per_clip_in_prompt_order(
    sample_samples, tiny_tokenizer, tiny_codec, tower_config
):
    assert encodes_whisper(tower_config)
    dataset = VoiceCloningDataset(sample_samples[:1], tiny_tokenizer, tiny_codec, with_waveforms=True)
    item = dataset[0]
    ref = load_audio(sample_samples[0].ref_audio, WHISPER_SAMPLE_RATE)
    target = load_audio(sample_samples[0].target_audio, WHISPER_SAMPLE_RATE)
    assert item.audio_waveforms_start.tolist() == [0, len(ref)]
    assert item.audio_sample_rate.tolist() == [WHISPER_SAMPLE_RATE] * 2
    np.testing.assert_allclose(item.get_wv(0)[0].numpy(), ref)
    np.testing.assert_allclose(item.get_wv(1)[0].numpy(), target)
    # without the flag (the released model) no waveform is read
    assert VoiceCloningDataset(sample_samples[:1], tiny_tokenizer, tiny_codec)[0].audio_waveforms_concat.numel() == 0


def test_training_batch_runs_through_the_tower_model(
    sample_samples, tiny_tokenizer, tiny_codec, tower_config, tower_model
):
    dataset = VoiceCloningDataset(sample_samples[:2], tiny_tokenizer, tiny_codec, with_waveforms=True)
    collate = DictCollator(build_collator(tower_config))
    batch = collate([dataset[0], dataset[1]])
    # the five-message prompt holds its audio in assistant turns (audio-out): no audio-in clip, so
    # upstream computes Whisper features for none of them (an empty feature batch)
    assert batch["audio_features"].shape == (0, 80, 3000)
    with torch.no_grad():
        parts = compute_loss(tower_model(**batch), batch["label_audio_ids"])
    assert torch.isfinite(parts.loss)


def test_user_turn_audio_reaches_the_tower(sample_samples, tiny_tokenizer, tiny_codec, tower_config, tower_model):
    s = sample_samples[0]
    chatml = ChatMLSample(
        messages=[
            Message(role="user", content=AudioContent(audio_url=s.ref_audio)),
            Message(role="user", content=s.target_text),
            Message(role="assistant", content=AudioContent(audio_url=s.target_audio)),
        ],
        start_index=2,
    )
    input_ids, label_ids, paths = tokenize_chatml(chatml, tiny_tokenizer)
    codes = [tiny_codec.encode(p).numpy() for p in paths]
    waves = [load_audio(p, WHISPER_SAMPLE_RATE) for p in paths]
    collate = DictCollator(build_collator(tower_config))
    batch = collate([make_chatml_sample(input_ids, label_ids, codes, waves)])
    assert batch["audio_features"].shape == (1, 80, 3000)  # one 30 s Whisper window for the user clip
    quiet = collate([make_chatml_sample(input_ids, label_ids, codes, [waves[0] * 0.01, waves[1]])])
    with torch.no_grad():
        a, b = tower_model(**batch).logits, tower_model(**quiet).logits
    assert not torch.allclose(a, b)  # the waveform changes what the model sees
