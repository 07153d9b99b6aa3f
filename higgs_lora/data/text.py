"""The Arabic text front-end: ONE normaliser for transcripts, used identically by training and inference.

Training learns the mapping text -> speech for the text it is shown; inference must show the model
text written the same way, or it asks for spellings it never saw (a tatweel, a Persian digit, a
stray diacritic). So the normaliser is applied where samples become `CloneSample`s
(`validate.load_samples`), which both training and inference go through, and its settings are stored
with the training run (`TrainConfig.text_normalization`) so inference can replay them.

Settings are a short comma-separated spec (JSON-serialisable, fits a CLI flag), e.g.

    "whitespace,tatweel"                                   the default
    "whitespace,tatweel,strip_diacritics,digits=western"   more aggressive
    "none"                                                 text used exactly as written

Options:
    whitespace        collapse runs of whitespace (NBSP and other Unicode spaces included) to one
                      space, trim, and drop invisible bidi marks (LRM, RLM, ALM, embeddings)
    tatweel           remove tatweel/kashida (U+0640), a typographic stretch with no sound
    strip_diacritics  remove tashkeel (harakat, tanwin, shadda, sukun, dagger alif, Quranic marks)
    nfkc              Unicode NFKC: Arabic presentation forms -> base letters, ligatures expanded
    punct=arabic|latin  , ; ? <-> the Arabic forms; also unify quotes, ellipsis and dashes
    digits=western|arabic  Arabic-Indic (U+0660..) and Persian (U+06F0..) digits <-> 0-9

The default keeps diacritics: they carry pronunciation (short vowels, gemination) the model can
use, and stripping them changes what a partly vocalised sentence says. Whitespace and tatweel are
pronunciation-neutral, so normalising them can only remove spurious variation. Digits and
punctuation are opt-in because they change how a sentence is read aloud.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

DEFAULT_TEXT_NORMALIZATION = "whitespace,tatweel"

# Characters per second of speech (letters and digits only; spaces, punctuation and diacritics do not
# count). Arabic read speech runs at roughly 8-18; outside this range a transcript most likely does
# not belong to its clip (wrong pairing, truncated audio, long silences).
MIN_CHARS_PER_SECOND = 2.0
MAX_CHARS_PER_SECOND = 30.0

TATWEEL = "\u0640"
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]")
_INVISIBLE = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")
_EASTERN_DIGITS = "٠١٢٣٤٥٦٧٨٩"
_PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
_TO_WESTERN = str.maketrans(_EASTERN_DIGITS + _PERSIAN_DIGITS, "0123456789" * 2)
_TO_ARABIC = str.maketrans("0123456789" + _PERSIAN_DIGITS, _EASTERN_DIGITS * 2)
_PUNCT_COMMON = str.maketrans(
    {"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "..."}
)
_TO_ARABIC_PUNCT = str.maketrans({",": "،", ";": "؛", "?": "؟"})
_TO_LATIN_PUNCT = str.maketrans({"،": ",", "؛": ";", "؟": "?"})
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([،؛؟,;?!.:])")

_FLAGS = ("whitespace", "tatweel", "strip_diacritics", "nfkc")
_CHOICES = {"punct": ("arabic", "latin"), "digits": ("western", "arabic")}


@dataclass(frozen=True)
class TextNormalizer:
    whitespace: bool = False
    tatweel: bool = False
    strip_diacritics: bool = False
    nfkc: bool = False
    punct: str | None = None
    digits: str | None = None

    @classmethod
    def from_config(cls, value=None) -> "TextNormalizer":
        """From a spec string, a dict of the fields, another TextNormalizer, or None (the default)."""
        if isinstance(value, TextNormalizer):
            return value
        if value is None:
            value = DEFAULT_TEXT_NORMALIZATION
        if isinstance(value, dict):
            unknown = set(value) - set(_FLAGS) - set(_CHOICES)
            if unknown:
                raise ValueError(f"text normalization: unknown option(s) {sorted(unknown)}; known: {_known()}")
            norm = cls(**value)
            norm._check()
            return norm
        if not isinstance(value, str):
            raise ValueError(f"text normalization: expected a spec string or a dict, got {type(value).__name__}")
        fields: dict = {}
        for part in (p.strip() for p in value.split(",")):
            if not part or part == "none":
                continue
            if part == "default":
                fields.update(cls.from_config(DEFAULT_TEXT_NORMALIZATION)._fields())
            elif part in _FLAGS:
                fields[part] = True
            elif "=" in part and part.split("=", 1)[0] in _CHOICES:
                key, choice = part.split("=", 1)
                fields[key] = choice
            else:
                raise ValueError(f"text normalization: unknown option {part!r}; known: {_known()}")
        norm = cls(**fields)
        norm._check()
        return norm

    def _check(self) -> None:
        for key, choices in _CHOICES.items():
            if getattr(self, key) not in (None, *choices):
                raise ValueError(f"text normalization: {key}={getattr(self, key)!r}, expected one of {choices}")

    def _fields(self) -> dict:
        return {k: getattr(self, k) for k in (*_FLAGS, *_CHOICES) if getattr(self, k)}

    def to_config(self) -> str:
        """The canonical spec string (round-trips through from_config)."""
        parts = [k for k in _FLAGS if getattr(self, k)] + [
            f"{k}={getattr(self, k)}" for k in _CHOICES if getattr(self, k)
        ]
        return ",".join(parts) or "none"

    def __call__(self, text: str) -> str:
        if self.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.tatweel:
            text = text.replace(TATWEEL, "")
        if self.strip_diacritics:
            text = _DIACRITICS.sub("", text)
        if self.digits == "western":
            text = text.translate(_TO_WESTERN)
        elif self.digits == "arabic":
            text = text.translate(_TO_ARABIC)
        if self.punct:
            text = text.translate(_PUNCT_COMMON)
            text = text.translate(_TO_ARABIC_PUNCT if self.punct == "arabic" else _TO_LATIN_PUNCT)
        if self.whitespace:
            text = _SPACES.sub(" ", _INVISIBLE.sub("", text)).strip()
            if self.punct:
                text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
        return text


def _known() -> str:
    return ", ".join([*_FLAGS, "punct=arabic|latin", "digits=western|arabic", "none", "default"])


def normalize_sample(sample, normalizer):
    """The sample with its reference and target transcripts normalised (the system prompt is left as is:
    it is an instruction shared by every sample, not a transcript)."""
    norm = TextNormalizer.from_config(normalizer)
    return replace(sample, ref_text=norm(sample.ref_text), target_text=norm(sample.target_text))


def spoken_chars(text: str) -> int:
    """Letters and digits: what takes time to say (diacritics are combining marks, not letters)."""
    return sum(ch.isalnum() for ch in text)


def speaking_rate(text: str, seconds: float) -> float:
    return spoken_chars(text) / seconds if seconds > 0 else float("inf")


def implausible_speaking_rate(
    text: str, seconds: float, min_cps: float = MIN_CHARS_PER_SECOND, max_cps: float = MAX_CHARS_PER_SECOND
) -> str | None:
    """A warning message when `text` cannot plausibly be spoken in `seconds`, else None."""
    rate = speaking_rate(text, seconds)
    if min_cps <= rate <= max_cps:
        return None
    return (
        f"{spoken_chars(text)} characters in {seconds:.2f} s = {rate:.1f} chars/s, outside "
        f"{min_cps:g}-{max_cps:g}: is the transcript the one of this clip?"
    )
