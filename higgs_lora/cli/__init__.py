"""The `higgs-lora` command: argument parsing only, one module per subcommand (pipeline stage).

    higgs-lora download [--output_dir D]        stage the pinned model and codec as local folders
    higgs-lora create-sample-data OUT.json      small canonical data set with real speech
    higgs-lora convert IN... --output OUT.jsonl  other layouts / folders of clips -> canonical JSONL
    higgs-lora validate DATA                    list invalid samples (exit 1 if any)
    higgs-lora tokenize DATA --audio_tokenizer T --cache_dir C   encode the audio once (code cache)
    higgs-lora plan --batch_size N --seq_len L  memory and time of a run, from the model config
    higgs-lora train --train_data DATA ...      LoRA fine-tuning (torchrun for several GPUs)
    higgs-lora merge --base_model B --lora_path L --output_path O
    higgs-lora export --model_path M [--lora_path L] --output_dir O   transformers-native (>= 5.3) folders
    higgs-lora infer --chatml_file F --output_dir D --model_path M [--lora_path L]
    higgs-lora eval --data HELDOUT --output_dir D --model_path M [--lora_path L]
    higgs-lora clone --ref_audio R.wav --ref_text T --text T --output out.wav [--model_path M --lora_path L]
    higgs-lora check-alignment --train_data F --base_model B --audio_tokenizer T [--report R.json]
    higgs-lora gpu-check [--full] [--shape released|small] [--output R.json]   released-shape speed/memory check (+ every command)
    higgs-lora bench [--output bench.json]      training-step ratios on CPU (memory, FLOPs, casts, syncs)

`tiny` names the offline random-weight model (--base_model/--model_path) or codec (--audio_tokenizer).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..infer.errors import EXIT_DEVICE_ERROR, DeviceError
from .common import HelpFormatter, Parser, report_interrupt

# One module per subcommand, in the order `--help` lists them. Each module has NAME, SUMMARY,
# add_arguments(parser) and run(args) (and optionally a longer DESCRIPTION); it imports torch and friends only inside run(), so building
# the parser (and `--help`) stays instant.
COMMANDS = [
    "download",
    "create_sample_data",
    "convert",
    "validate",
    "tokenize",
    "plan",
    "train",
    "merge",
    "export",
    "infer",
    "eval",
    "clone",
    "check_alignment",
    "gpu_check",
    "bench",
]


def command_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def _add_command(p: argparse.ArgumentParser, module) -> None:
    module.add_arguments(p)
    p.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    p.set_defaults(func=module.run, interrupted_hint=getattr(module, "INTERRUPTED_HINT", None))
    p.check_arguments = getattr(module, "check_arguments", None)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="higgs-lora", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        module = command_module(name)
        p = sub.add_parser(
            module.NAME,
            help=module.SUMMARY,
            description=getattr(module, "DESCRIPTION", module.SUMMARY),
            formatter_class=HelpFormatter,
        )
        _add_command(p, module)
    return parser


# User mistakes (bad data, missing or wrong folders, unreachable hub ids, existing outputs): one line,
# exit 2. Everything else is a bug and keeps its traceback; --debug shows the traceback for all.
USER_ERRORS = (ValueError, OSError)


def run(func, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return func(args)
    except DeviceError as err:  # the GPU failed mid-run: one line (what was done is saved), its own exit code
        if getattr(args, "debug", False):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DEVICE_ERROR
    except KeyboardInterrupt:  # commands that can stop cleanly catch Ctrl-C themselves; this is the rest
        if getattr(args, "debug", False):
            raise
        return report_interrupt(getattr(args, "interrupted_hint", None))
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            raise
        message = str(err) or type(err).__name__
        if isinstance(err, OSError) and err.filename and str(err.filename) not in message:
            message = f"{err.filename}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.func, args)


def run_command(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """One subcommand as its own program (the design's script paths): its --help shows `prog`."""
    module = command_module(name.replace("-", "_"))
    parser = Parser(
        prog=prog, description=getattr(module, "DESCRIPTION", module.SUMMARY), formatter_class=HelpFormatter
    )
    _add_command(parser, module)
    args = parser.parse_args(argv)
    return run(args.func, args)
