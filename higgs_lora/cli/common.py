"""Pieces every subcommand shares. Nothing here imports torch: `--help` must stay instant."""

from __future__ import annotations

import argparse
import difflib
import sys

from ..defaults import DEFAULT_SYSTEM_PROMPT

EXIT_CTRL_C = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C'd command


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default unless its help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and "(default" not in text and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


PRECISION_CHOICES = ["auto", "bf16", "fp16", "no"]


def add_mixed_precision(p: argparse.ArgumentParser, help: str, default: str = "auto") -> None:
    """`--mixed_precision [SCHEME]`, the flag train, check-alignment and gpu-check share (bare flag = bf16)."""
    p.add_argument("--mixed_precision", nargs="?", const="bf16", default=default, choices=PRECISION_CHOICES, help=help)


def add_system_prompt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--system_prompt",
        default=DEFAULT_SYSTEM_PROMPT,
        help='system prompt for samples without one ("" for none); training and inference share it '
        f"(default: {DEFAULT_SYSTEM_PROMPT!r})",
    )


def add_text_normalization(p: argparse.ArgumentParser, default=None, from_run: bool = False) -> None:
    """`from_run`: commands that serve a trained adapter/model default to the training run's setting."""
    from ..data.text import DEFAULT_TEXT_NORMALIZATION

    fallback = f"the training run's, else {DEFAULT_TEXT_NORMALIZATION}" if from_run else DEFAULT_TEXT_NORMALIZATION
    p.add_argument(
        "--text_normalization",
        default=default,
        metavar="SPEC",
        help="transcript normaliser shared by training and inference: comma-separated options from "
        "whitespace, tatweel, strip_diacritics, nfkc, punct=arabic|latin, digits=western|arabic, "
        f"or none (default: {fallback})",
    )


def option_suggestions(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """ "; did you mean --learning_rate?" for each mistyped flag, from the options `parser` knows."""
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    hints = []
    for arg in unknown:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--"):
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
            if close:
                hints.append(f"did you mean {close[0]} (not {flag})?")
    return ("; " + "; ".join(hints)) if hints else ""


class Parser(argparse.ArgumentParser):
    """argparse with two additions every subcommand gets: a mistyped flag is answered with the closest
    known one, and a subcommand's `check_arguments(parser, args)` (when it has one) runs right after
    parsing, before any heavy import, so a usage mistake is exit 2 in well under a second."""

    check_arguments = None

    def parse_args(self, args=None, namespace=None):
        ns, extras = self.parse_known_args(args, namespace)
        parser = self._chosen_parser(ns)
        if extras:
            parser.error("unrecognized arguments: " + " ".join(extras) + option_suggestions(parser, extras))
        if parser.check_arguments is not None:
            parser.check_arguments(parser, ns)
        return ns

    def _chosen_parser(self, ns) -> "Parser":
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(ns, action.dest, None))
                if isinstance(chosen, Parser):
                    return chosen._chosen_parser(ns)
        return self


def interrupted_line(hint: str | None = None) -> str:
    """The one line a Ctrl-C leaves (a second Ctrl-C, or one outside a loop that stops cleanly)."""
    return "interrupted (Ctrl-C)" + (f"; {hint}" if hint else "")


def report_interrupt(hint: str | None = None) -> int:
    print(interrupted_line(hint), file=sys.stderr, flush=True)
    return EXIT_CTRL_C
