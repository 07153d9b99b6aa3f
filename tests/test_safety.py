"""Safety properties read off the code itself: weights-only loading and no remote code.

A test in tests/train/test_checkpoints.py also resumes a run with torch.load forced to weights_only.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "higgs_lora"
SOURCES = sorted(PACKAGE.rglob("*.py")) + [PACKAGE.parent / "trainer" / "train.py", PACKAGE.parent / "arb_inference.py"]


def _calls(name: str):
    for path in SOURCES:
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    yield path, node


def test_sources_are_scanned():
    assert len(SOURCES) > 20
    assert any(True for _ in _calls("from_pretrained"))  # the scan finds calls at all


def test_no_torch_load_without_weights_only():
    offending = []
    for path, node in _calls("load"):
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "torch"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        value = kw.get("weights_only")
        if value is not None and not (isinstance(value, ast.Constant) and value.value is True):
            offending.append(f"{path.name}:{node.lineno}")
        if value is None:
            offending.append(f"{path.name}:{node.lineno} (relies on the default)")
    assert not offending, offending


def test_no_trust_remote_code_anywhere():
    offending = [f"{path.name}:{node.lineno}" for name in ("from_pretrained", "load_dataset", "pipeline")
                 for path, node in _calls(name)
                 if any(k.arg == "trust_remote_code" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                        for k in node.keywords)]
    assert not offending, offending
    assert not [p.name for p in SOURCES if p.is_file() and "trust_remote_code=True" in p.read_text(encoding="utf-8")]


def test_model_weights_load_from_safetensors(tiny_model_factory):
    from higgs_lora.model.tiny import ensure_tiny_model

    folder = ensure_tiny_model()
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
