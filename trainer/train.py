#!/usr/bin/env python
"""Training entry point at the design's path: a thin wrapper over `higgs-lora train`.

python trainer/train.py --train_data data/chatml_samples.json --output_dir checkpoints/voice_cloning
python trainer/train.py --validate_data_only --train_data data/samples.json
python trainer/train.py --create_sample_data data/test_samples.json
python trainer/train.py --quick_test --train_data data/samples.json
torchrun --nproc_per_node=8 trainer/train.py --train_data ...      (see scripts/launch_8xh200_training.sh)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from any folder, installed or not

from higgs_lora import cli  # noqa: E402
from higgs_lora.cli import train as train_command  # noqa: E402
from higgs_lora.cli.common import HelpFormatter, Parser  # noqa: E402


def main(argv=None) -> int:
    parser = Parser(description=__doc__, formatter_class=HelpFormatter)
    # Making or checking data needs no training flags; training does.
    parser.check_arguments = (
        lambda p, a: None if (a.create_sample_data or a.validate_data_only) else train_command.check_arguments(p, a)
    )
    train_command.add_arguments(parser)
    parser.add_argument(
        "--validate_data_only", action="store_true", help="check --train_data, list invalid samples, exit"
    )
    parser.add_argument(
        "--create_sample_data", metavar="OUT_JSON", help="write a small sample set with real speech and exit"
    )
    parser.add_argument("--overwrite", action="store_true", help="with --create_sample_data: replace an existing file")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    args = parser.parse_args(argv)
    if args.create_sample_data:
        return cli.main(
            ["create-sample-data", args.create_sample_data, "--system_prompt", args.system_prompt]
            + (["--overwrite"] if args.overwrite else [])
        )
    if args.validate_data_only:
        if not args.train_data:
            parser.error("--validate_data_only needs --train_data")
        return cli.main(
            ["validate", args.train_data, "--system_prompt", args.system_prompt]
            + (["--text_normalization", args.text_normalization] if args.text_normalization else [])
        )
    return cli.run(train_command.run, args)


if __name__ == "__main__":
    sys.exit(main())
