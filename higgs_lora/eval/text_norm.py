"""Transcript normalisation before WER/CER, per language, so that scores count words, not spelling.

Arabic: ASR output rarely carries diacritics and spells alef/ya/ta-marbuta variants freely, while the
reference texts of a voice-cloning set are often fully vocalised; without unifying both sides every
word would count as an error. English: case and punctuation are not pronounced.
"""

from __future__ import annotations

import re
import unicodedata

from ..data.text import TextNormalizer

# Diacritics, tatweel and Arabic-Indic/Persian digits: the training front-end's own rules (data/text.py).
_AR_STRIP = TextNormalizer.from_config("tatweel,strip_diacritics,digits=western")
# Spellings ASR output and vocalised references disagree on; unified for scoring only (they are
# distinct letters for the model, so the training front-end keeps them).
_AR_UNIFY = str.maketrans(
    {
        "\u0623": "\u0627",  # alef with hamza above -> alef
        "\u0625": "\u0627",  # alef with hamza below -> alef
        "\u0622": "\u0627",  # alef with madda -> alef
        "\u0671": "\u0627",  # alef wasla -> alef
        "\u0649": "\u064a",  # alef maksura -> ya
        "\u06cc": "\u064a",  # farsi ya -> ya
        "\u0629": "\u0647",  # ta marbuta -> ha
    }
)


def detect_language(text: str) -> str:
    """'ar' when most letters are Arabic script, 'en' when most are Latin, else 'other'."""
    arabic = sum(1 for ch in text if "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if arabic == 0 and latin == 0:
        return "other"
    return "ar" if arabic >= latin else "en"


def _strip_punctuation(text: str) -> str:
    # Unicode category P* (punctuation) and S* (symbols) become spaces; letters, marks, digits stay.
    return "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)


def normalize(text: str, language: str) -> str:
    """Text as it is scored: `language` is 'ar', 'en' or anything else (generic: case and punctuation)."""
    text = unicodedata.normalize("NFKC", text)
    if language == "ar":
        text = _AR_STRIP(text).translate(_AR_UNIFY)
    elif language == "en":
        # "don't" and "dont" are one word for a listener; drop apostrophes before punctuation goes.
        text = re.sub("['\u2019]", "", text)
    text = _strip_punctuation(text.lower())
    return " ".join(text.split())
