"""check-alignment: does training see what inference builds, on the samples it is given?

- `parity`: prompt parity (training prompt and reference codes vs inference's) and the label audit.
- `fit`: the overfit check, one sample fitted through `train.recipe.train` and judged through inference.
- `judge`: teacher-forced agreement, the judge's inference-like forward, the `--lora_path` adapter check.
- `run`: `run_checks`, every check in order, and the injectable `TrainingSide`.
- `result`: `CheckResult` and `AlignmentReport`.

A passing check is evidence on the samples it ran, not a guarantee for other data.
"""
