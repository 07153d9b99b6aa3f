"""THE prompt builder: training ChatML, its labels, and the inference prompt that must match it."""

import dataclasses

import pytest
from boson_multimodal.data_types import AudioContent, ChatMLSample, Message
from boson_multimodal.dataset.chatml_dataset import prepare_chatml_sample

from higgs_lora.data.collator import build_collator, make_chatml_sample
from higgs_lora.data.sample import (
    GENERATION_PREFIX,
    CloneSample,
    build_messages,
    inference_chatml,
    inference_prompt,
    tokenize_chatml,
    training_chatml,
)

TARGET_LABEL_TOKENS = ["<|audio_out_bos|>", "<|AUDIO_OUT|>", "<|audio_eos|>", "<|eot_id|>"]


@pytest.fixture()
def sample(sample_samples):
    return sample_samples[0]


@pytest.fixture()
def sample_no_system(sample):
    return dataclasses.replace(sample, system_prompt="")


def _roles(chatml):
    return [m.role for m in chatml.messages]


def _labelled_tokens(tokenizer, labels):
    return tokenizer.convert_ids_to_tokens([t for t in labels if t != -100])


def test_training_chatml_has_five_messages_and_trains_only_the_last(sample):
    chatml = training_chatml(sample)
    assert _roles(chatml) == ["system", "user", "assistant", "user", "assistant"]
    assert chatml.start_index == 4
    assert chatml.speaker == sample.speaker
    assert chatml.messages[0].content == sample.system_prompt
    assert chatml.messages[1].content == sample.ref_text
    assert chatml.messages[2].content.audio_url == sample.ref_audio
    assert chatml.messages[3].content == sample.target_text
    assert chatml.messages[4].content.audio_url == sample.target_audio


def test_empty_system_prompt_drops_the_system_turn(sample_no_system):
    chatml = training_chatml(sample_no_system)
    assert _roles(chatml) == ["user", "assistant", "user", "assistant"]
    assert chatml.start_index == 3
    assert chatml.messages[-1].content.audio_url == sample_no_system.target_audio


def test_training_sample_without_target_audio_is_refused(sample):
    with pytest.raises(ValueError, match="target audio"):
        training_chatml(dataclasses.replace(sample, target_audio=None))


def test_inference_chatml_is_the_training_chatml_without_the_target(sample):
    assert [(m.role, m.content) for m in inference_chatml(sample).messages] == [
        (m.role, m.content) for m in training_chatml(sample).messages[:-1]
    ]


def test_a_chatml_upstream_cannot_tokenize_is_a_value_error_with_the_real_cause(sample, tiny_tokenizer):
    chatml = training_chatml(sample)
    chatml.messages[1].content = [12345]  # neither text nor audio
    # upstream's handler fails to print a ChatMLSample and raises "not JSON serializable" instead
    with pytest.raises(TypeError, match="JSON serializable"):
        prepare_chatml_sample(chatml, tiny_tokenizer)
    with pytest.raises(
        ValueError, match=r"could not tokenize the sample \(AttributeError: 'int' object has no attribute"
    ):
        tokenize_chatml(chatml, tiny_tokenizer)


@pytest.mark.parametrize("with_system", [True, False])
def test_labels_are_exactly_the_target_turn(sample, sample_no_system, tiny_tokenizer, with_system):
    s = sample if with_system else sample_no_system
    input_ids, labels, audio_paths = tokenize_chatml(training_chatml(s), tiny_tokenizer)

    assert len(labels) == len(input_ids)
    # prepare_chatml_sample labels the whole target turn, <|AUDIO_OUT|> included ...
    assert _labelled_tokens(tiny_tokenizer, labels) == TARGET_LABEL_TOKENS
    # ... and those are the last four tokens of the sequence, labelled with themselves
    assert all(t == -100 for t in labels[:-4])
    assert labels[-4:] == input_ids[-4:]
    # the reference turn is conditioning only: its audio tokens are in the input, not the labels
    out_bos = tiny_tokenizer.convert_tokens_to_ids("<|audio_out_bos|>")
    assert input_ids.count(out_bos) == 2
    assert audio_paths == [s.ref_audio, s.target_audio]


def test_collator_masks_the_audio_out_placeholder_label(sample, tiny_tokenizer, tiny_config):
    input_ids, labels, _ = tokenize_chatml(training_chatml(sample), tiny_tokenizer)
    # any codes will do for the text labels; the reference has 3 frames, the target 5
    import numpy as np

    codes = [np.zeros((8, 3), dtype=np.int64), np.ones((8, 5), dtype=np.int64)]
    batch = build_collator(tiny_config)([make_chatml_sample(input_ids, labels, codes)])
    text_labels = batch.label_ids[0].tolist()
    assert _labelled_tokens(tiny_tokenizer, text_labels) == ["<|audio_out_bos|>", "<|audio_eos|>", "<|eot_id|>"]


@pytest.mark.parametrize("with_system", [True, False])
def test_inference_prompt_is_the_training_input_up_to_the_last_audio_out_bos(
    sample, sample_no_system, tiny_tokenizer, with_system
):
    s = sample if with_system else sample_no_system
    train_ids, _, _ = tokenize_chatml(training_chatml(s), tiny_tokenizer)
    out_bos = tiny_tokenizer.convert_tokens_to_ids("<|audio_out_bos|>")
    last = max(i for i, t in enumerate(train_ids) if t == out_bos)

    prompt_ids, audio_paths = inference_prompt(s, tiny_tokenizer)

    assert prompt_ids == train_ids[: last + 1]
    assert audio_paths == [s.ref_audio]
    # and the inference sample does not even need a target
    prompt_no_target, _ = inference_prompt(dataclasses.replace(s, target_audio=None), tiny_tokenizer)
    assert prompt_no_target == prompt_ids


def test_generation_prefix_opens_an_assistant_turn_with_forced_audio(tiny_tokenizer):
    ids = tiny_tokenizer.encode(GENERATION_PREFIX, add_special_tokens=False)
    expected = (
        ["<|start_header_id|>"]
        + tiny_tokenizer.tokenize("assistant")
        + ["<|end_header_id|>"]
        + tiny_tokenizer.tokenize("\n\n")
        + ["<|audio_out_bos|>"]
    )
    assert tiny_tokenizer.convert_ids_to_tokens(ids) == expected


def test_design_four_message_sample_has_nothing_to_learn(sample, tiny_tokenizer):
    """Why four-message samples are refused: with the reference masked, not one label is left."""
    four = ChatMLSample(
        messages=[
            Message(role="system", content=sample.system_prompt),
            Message(role="user", content=sample.ref_text),
            Message(role="assistant", content=AudioContent(audio_url=sample.ref_audio)),
            Message(role="user", content=sample.target_text),
        ],
        start_index=3,
    )
    input_ids, labels, audio_contents, _ = prepare_chatml_sample(four, tiny_tokenizer)
    assert input_ids is not None and len(input_ids) > 0
    assert len(audio_contents) == 1
    assert all(t == -100 for t in labels)
    # whereas start_index=None would train the reference clip itself
    _, labels_none, _, _ = prepare_chatml_sample(dataclasses.replace(four, start_index=None), tiny_tokenizer)
    assert _labelled_tokens(tiny_tokenizer, labels_none) == TARGET_LABEL_TOKENS


@pytest.mark.parametrize("text", ["مَرْحَبًا، كَيْفَ حَالُكَ؟", "السلام عليكم 123", "Hello, world! 😀"])
def test_text_survives_tokenize_and_decode(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    assert tiny_tokenizer.decode(ids) == text


def test_arabic_transcripts_survive_the_prompt_builder(sample, tiny_tokenizer):
    assert any("\u0600" <= ch <= "\u06ff" for ch in sample.ref_text)
    input_ids, _, _ = tokenize_chatml(training_chatml(sample), tiny_tokenizer)
    decoded = tiny_tokenizer.decode(input_ids)
    assert sample.ref_text in decoded and sample.target_text in decoded
    assert decoded.index(sample.ref_text) < decoded.index(sample.target_text)
    assert sample.system_prompt in decoded


def test_build_messages_keeps_speaker_out_of_the_text(tiny_tokenizer):
    s = CloneSample(ref_text="a", ref_audio="r.wav", target_text="b", target_audio="t.wav", speaker="spk9")
    assert [m.role for m in build_messages(s, with_target=True)] == ["user", "assistant", "user", "assistant"]
    ids, _, _ = tokenize_chatml(training_chatml(s), tiny_tokenizer)
    assert "spk9" not in tiny_tokenizer.decode(ids)


# --- chunked inference: earlier chunks as context turns ------------------------------------------


def test_context_turns_sit_between_the_reference_and_the_target_text():
    from higgs_lora.data.sample import CloneSample, build_messages, inference_chatml

    sample = CloneSample(ref_text="ref", ref_audio="ref.wav", target_text="third", system_prompt="sys")
    messages = build_messages(sample, with_target=False, context=[("first", "c1"), ("second", "c2")])
    shape = [(m.role, m.content if isinstance(m.content, str) else m.content.audio_url) for m in messages]
    assert shape == [
        ("system", "sys"),
        ("user", "ref"),
        ("assistant", "ref.wav"),
        ("user", "first"),
        ("assistant", "c1"),
        ("user", "second"),
        ("assistant", "c2"),
        ("user", "third"),
    ]
    # no context: exactly the training prompt's messages without the target turn
    assert inference_chatml(sample).messages == build_messages(sample, with_target=False)


def test_context_is_refused_for_training_samples():
    import pytest

    from higgs_lora.data.sample import CloneSample, build_messages

    sample = CloneSample(ref_text="r", ref_audio="r.wav", target_text="t", target_audio="t.wav")
    with pytest.raises(ValueError, match="context"):
        build_messages(sample, with_target=True, context=[("x", "x.wav")])


def test_inference_prompt_with_context_lists_the_context_audio_after_the_reference(tiny_tokenizer):
    from higgs_lora.data.sample import CloneSample, inference_prompt

    sample = CloneSample(ref_text="ref", ref_audio="ref.wav", target_text="now")
    ids, paths = inference_prompt(sample, tiny_tokenizer, context=[("before", "gen-0")])
    plain, _ = inference_prompt(sample, tiny_tokenizer)
    assert paths == ["ref.wav", "gen-0"]
    assert len(ids) > len(plain) and ids[-3:] == plain[-3:]
    text = tiny_tokenizer.decode(ids)
    assert text.index("ref") < text.index("before") < text.index("now")
