"""The `higgs-lora` command: argument parsing only, one module per subcommand (pipeline stage).

    higgs-lora create-sample-data OUT.json      small canonical data set with real speech
    higgs-lora validate DATA                    list invalid samples (exit 1 if any)
    higgs-lora train --train_data DATA ...      LoRA fine-tuning (torchrun for several GPUs)
    higgs-lora merge --base_model B --lora_path L --output_path O
    higgs-lora infer --chatml_file F --output_dir D --model_path M [--lora_path L]
    higgs-lora eval --data HELDOUT --output_dir D --model_path M [--lora_path L]
    higgs-lora check-alignment --train_data F --base_model B --audio_tokenizer T [--report R.json]

`tiny` names the offline random-weight model (--base_model/--model_path) or codec (--audio_tokenizer).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .common import HelpFormatter

# One module per subcommand, in the order `--help` lists them. Each module has NAME, SUMMARY,
# add_arguments(parser) and run(args); it imports torch and friends only inside run(), so building
# the parser (and `--help`) stays instant.
COMMANDS = ["create_sample_data", "validate", "train", "merge", "infer", "eval", "check_alignment"]


def command_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="higgs-lora", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        p = sub.add_parser(module.NAME, help=module.SUMMARY, description=module.SUMMARY, formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def run(func, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # Data and path problems are the user's to fix: say what is wrong without a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
