"""Long-text splitting, the token cap from the text length, and the crossfade."""

import numpy as np
import pytest

from higgs_lora.infer.chunking import crossfade_concat, split_text


def test_short_text_is_one_chunk_and_empty_text_none():
    assert split_text("مرحبا بكم.", 300) == ["مرحبا بكم."]
    assert split_text("  a   b \n c ", 300) == ["a b c"]
    assert split_text("   ", 300) == []
    assert split_text("x. " * 200, 0) == [("x. " * 200).strip()]  # 0: never split


def test_splits_at_arabic_and_latin_sentence_ends_and_packs_up_to_the_cap():
    text = "الجملة الأولى هنا؟ الجملة الثانية هنا. The third one! الرابعة۔ والخامسة"
    assert split_text(text, 25) == ["الجملة الأولى هنا؟", "الجملة الثانية هنا.", "The third one! الرابعة۔", "والخامسة"]
    chunks = split_text(text, 40)
    assert all(len(c) <= 40 for c in chunks) and len(chunks) == 2
    assert " ".join(chunks).split() == text.split()
    # sentences are packed: two short sentences share a chunk when they fit
    assert split_text("أ. ب. ج. د.", 5) == ["أ. ب.", "ج. د."]


def test_long_sentence_breaks_at_arabic_clause_marks_then_words():
    sentence = "هذا جزء أول طويل، وهذا جزء ثان طويل؛ وهذا جزء ثالث طويل جدا جدا جدا"
    chunks = split_text(sentence, 25)
    assert all(len(c) <= 25 for c in chunks)
    assert chunks[0].endswith("،") and any(c.endswith("؛") for c in chunks)
    assert " ".join(chunks).split() == sentence.split()
    assert split_text("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]  # one huge word: cut hard


def test_crossfade_overlaps_each_boundary():
    sr = 1000
    a, b = np.ones(100, dtype=np.float32), np.full(80, 2.0, dtype=np.float32)
    out = crossfade_concat([a, b], sr, 0.01)  # 10 samples of overlap
    assert len(out) == 100 + 80 - 10 and out.dtype == np.float32
    assert np.all(out[:90] == 1.0) and np.all(out[100:] == 2.0)
    assert 1.0 < out[95] < 2.5  # equal-power mix inside the overlap
    assert np.array_equal(crossfade_concat([a, b], sr, 0), np.concatenate([a, b]))
    assert len(crossfade_concat([a[:3], b], sr, 0.01)) == 3 + 80 - 3  # overlap shortened to the short piece
    assert len(crossfade_concat([], sr)) == 0 and np.array_equal(crossfade_concat([a], sr), a)
    assert len(crossfade_concat([a, np.zeros(0), b], sr, 0)) == 180


@pytest.mark.parametrize("cap", [20, 60, 300])
def test_chunks_never_exceed_the_cap(cap):
    text = ("كلمة " * 37 + "نهاية. ") * 5 + "x" * (cap + 7)
    chunks = split_text(text, cap)
    assert all(0 < len(c) <= cap for c in chunks)
    assert "".join(" ".join(chunks).split()) == "".join(text.split())
