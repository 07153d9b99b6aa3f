"""Pieces every subcommand shares. Nothing here imports torch: `--help` must stay instant."""

from __future__ import annotations

import argparse

from ..defaults import DEFAULT_SYSTEM_PROMPT


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default unless its help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and "(default" not in text and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def add_system_prompt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system_prompt", default=DEFAULT_SYSTEM_PROMPT,
                   help="system prompt for samples without one (\"\" for none); training and inference share it "
                        f"(default: {DEFAULT_SYSTEM_PROMPT!r})")


def add_text_normalization(p: argparse.ArgumentParser, default=None, from_run: bool = False) -> None:
    """`from_run`: commands that serve a trained adapter/model default to the training run's setting."""
    from ..data.text import DEFAULT_TEXT_NORMALIZATION

    fallback = f"the training run's, else {DEFAULT_TEXT_NORMALIZATION}" if from_run else DEFAULT_TEXT_NORMALIZATION
    p.add_argument("--text_normalization", default=default, metavar="SPEC",
                   help="transcript normaliser shared by training and inference: comma-separated options from "
                        "whitespace, tatweel, strip_diacritics, nfkc, punct=arabic|latin, digits=western|arabic, "
                        f"or none (default: {fallback})")
