"""Imports run one way: down the layers below, never back up. Every module of the package is parsed (ast),
function-level imports included, and each import of a higher layer is named with its file and line.

Layers, bottom first (a module may import its own layer and any layer below):
  0 shared     constants, defaults, interrupts, ranks, entry_point: facts and process plumbing, no pipeline stage
  1 model      weights, hub downloads, boson import shims, precision, the tiny model. Below data because the
               audio codec data encodes with is a model fetched by model.resolve, and nothing in model reads data.
  2 data       formats, validation, audio codes, the cache, the dataset and collator
  3 train      the recipe, loss, checkpoints, the planner
  4 infer      the generation engine (reads a run's config from train)
  5 eval, checks, native, bench: consumers of the pipeline (evaluation, the alignment checks, the transformers
               bridge, benchmarks); peers, so they may import each other. A folder's layer covers every module in
               it (checks/run.py is layer 5 like checks/parity.py).
  6 cli        the commands; __main__
"""

import ast
from pathlib import Path

import higgs_lora

PACKAGE = Path(higgs_lora.__file__).parent
LAYERS = {
    "constants": 0,
    "defaults": 0,
    "interrupts": 0,
    "ranks": 0,
    "entry_point": 0,
    "__init__": 0,
    "model": 1,
    "data": 2,
    "train": 3,
    "infer": 4,
    "eval": 5,
    "checks": 5,
    "native": 5,
    "bench": 5,
    "cli": 6,
    "__main__": 6,
}

# Back-edges that remain, each with its reason. The test fails on any edge not listed here, and on a listed
# edge that no longer exists (so the list shrinks as they are fixed).
ALLOWED = {
    # Training evaluates with the inference engine mid-run: the recipe builds eval.callback's callback.
    # train/recipe.py is being edited elsewhere; the fix is for cli/train.py to build the callback and
    # hand it to recipe.train(callbacks=...), which already takes callbacks.
    ("higgs_lora.train.recipe", "higgs_lora.eval.callback"),
    # A native-format (transformers >= 5.3) folder is converted on load. The converters (native/imports.py,
    # codec.py, config.py, weights.py, tensors.py) belong under model/; native/ would then keep export
    # and parity only.
    ("higgs_lora.model.folder_checks", "higgs_lora.native.imports"),
    ("higgs_lora.model.folder_checks", "higgs_lora.native.codec"),
    # `bench --full` times the real commands as a user runs them, through the CLI's own entry point.
    ("higgs_lora.bench.full", "higgs_lora.cli"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: a new top-level module or folder needs its layer in tests/test_imports.py"
    return LAYERS[top]


def imported(path: Path, module: str):
    """(line, imported module) for every import of the package in the file, relative ones resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                names = [node.module]
            else:
                base = ".".join(package[: len(package) - node.level + 1])
                # `from .. import x`: x is a module of that package (or a name in its __init__)
                names = [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        yield from ((node.lineno, n) for n in names if n == "higgs_lora" or n.startswith("higgs_lora."))


def edges():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for line, target in imported(path, module):
            yield path, line, module, target


def test_no_import_runs_back_up_the_layers():
    upward = {}
    for path, line, module, target in edges():
        if layer(target) > layer(module):
            upward.setdefault((module, target), []).append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    new = [
        f"{where[0]}: {module} imports {target} (layer {layer(module)} -> {layer(target)})"
        for (module, target), where in sorted(upward.items())
        if (module, target) not in ALLOWED
    ]
    assert not new, "imports running back up the layers:\n" + "\n".join(new)
    gone = sorted(ALLOWED - set(upward))
    assert not gone, f"fixed back-edges still allow-listed in tests/test_imports.py: {gone}"


def test_every_layer_names_a_module_of_the_package():
    """Bug caught: a layer entry outliving its module (renamed, removed, or a folder now, like checks/) would
    go unnoticed; every entry must be a top-level module or folder of the package, and each of those have one."""
    present = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    assert set(LAYERS) == present
    assert layer("higgs_lora.checks.run") == layer("higgs_lora.checks") == LAYERS["checks"]


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    """Bug caught: a walker reading only module-level imports, or resolving `from ..x` wrongly, would pass a
    package full of back-edges (most of this package's cross-layer imports are inside functions)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from ..train.loss import compute_loss\n    from .. import cli\n", encoding="utf-8")
    assert list(imported(source, "higgs_lora.data.m")) == [(2, "higgs_lora.train.loss"), (3, "higgs_lora.cli")]
    assert layer("higgs_lora.data.m") < layer("higgs_lora.train.loss")
