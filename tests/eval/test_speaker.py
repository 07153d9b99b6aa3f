import sys
from itertools import combinations

import numpy as np
import pytest

from higgs_lora.data.audio import load_audio
from higgs_lora.eval.asr import MissingScorerError
from higgs_lora.eval.speaker import ResemblyzerEncoder, cosine, load_speaker_encoder


def test_cosine():
    assert cosine([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 2]) == pytest.approx(0.0)
    assert cosine([1, 1], [-1, -1]) == pytest.approx(-1.0)
    assert np.isnan(cosine([0, 0], [1, 0]))


def test_resemblyzer_sim_separates_the_shipped_speakers(shipped_clips):
    """Three espeak-ng voices (two Arabic, one English), three clips each: every clip is closer, on
    average, to the other clips of its own voice than to any other voice's clips."""
    encoder = load_speaker_encoder("resemblyzer")
    embeddings = [encoder.embed(load_audio(p, 16000), 16000) for p, *_ in shipped_clips]
    speakers = [s for _, s, *_ in shipped_clips]
    same, cross = [], []
    for i, j in combinations(range(len(embeddings)), 2):
        (same if speakers[i] == speakers[j] else cross).append(cosine(embeddings[i], embeddings[j]))
    assert np.mean(same) > np.mean(cross) + 0.15, (np.mean(same), np.mean(cross))
    for i, spk in enumerate(speakers):
        own = np.mean(
            [cosine(embeddings[i], embeddings[j]) for j in range(len(speakers)) if j != i and speakers[j] == spk]
        )
        for other in set(speakers) - {spk}:
            theirs = np.mean(
                [cosine(embeddings[i], embeddings[j]) for j in range(len(speakers)) if speakers[j] == other]
            )
            assert own > theirs, (i, spk, other, own, theirs)
    # The same clip at another sampling rate is the same voice.
    p = shipped_clips[0][0]
    assert cosine(encoder.embed(load_audio(p, 24000), 24000), embeddings[0]) > 0.98


def test_missing_resemblyzer_names_the_install_trap(monkeypatch):
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    with pytest.raises(MissingScorerError, match="--no-deps resemblyzer"):
        ResemblyzerEncoder()
    with pytest.raises(ValueError, match="unknown speaker encoder"):
        load_speaker_encoder("ecapa")
    assert load_speaker_encoder("none") is None


def test_wavlm_encoder_runs_a_local_xvector_checkpoint(tmp_path):
    """The WavLM plumbing on a tiny random WavLMForXVector saved to disk (real weights need the hub)."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    config = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(16, 16),
        tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1),
        xvector_output_dim=12,
    )
    WavLMForXVector(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path)
    encoder = load_speaker_encoder(f"wavlm:{tmp_path}")
    wav = np.random.default_rng(0).normal(0, 0.1, 24000).astype(np.float32)
    emb = encoder.embed(wav, 24000)
    assert emb.shape == (12,) and np.isfinite(emb).all()
    assert cosine(emb, encoder.embed(wav, 24000)) == pytest.approx(1.0, abs=1e-5)
