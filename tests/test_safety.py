"""Safety properties read off the code itself: weights-only loading and no remote code.

A test in tests/train/test_checkpoints.py also resumes a run with torch.load forced to weights_only.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "higgs_lora"
SOURCES = sorted(PACKAGE.rglob("*.py")) + [PACKAGE.parent / "trainer" / "train.py", PACKAGE.parent / "arb_inference.py"]


def _calls(name: str, sources=SOURCES):
    for path in sources:
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    yield path, node


def unsafe_torch_loads(sources=SOURCES) -> list[str]:
    offending = []
    for path, node in _calls("load", sources):
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "torch"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        value = kw.get("weights_only")
        if value is not None and not (isinstance(value, ast.Constant) and value.value is True):
            offending.append(f"{path.name}:{node.lineno}")
        if value is None:
            offending.append(f"{path.name}:{node.lineno} (relies on the default)")
    return offending


def _trusts_remote_code(node) -> bool:
    return any(
        k.arg == "trust_remote_code" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
        for k in node.keywords
    )


def remote_code_calls(sources=SOURCES) -> list[str]:
    offending = [
        f"{path.name}:{node.lineno}"
        for name in ("from_pretrained", "load_dataset", "pipeline")
        for path, node in _calls(name, sources)
        if _trusts_remote_code(node)
    ]
    literal = [p.name for p in sources if p.is_file() and "trust_remote_code=True" in p.read_text(encoding="utf-8")]
    return offending + literal


def test_the_scans_catch_each_kind_of_offence(tmp_path):
    """Bug caught: a scan that silently matches nothing (a renamed helper, a wrong attribute test, an empty
    source list) would let both safety tests below pass over unsafe code."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch\nfrom transformers import AutoModel\n"
        "a = torch.load('x')\nb = torch.load('y', weights_only=False)\n"
        "c = torch.load('z', weights_only=True)\n"
        "m = AutoModel.from_pretrained('m', trust_remote_code=flag)\n",
        encoding="utf-8",
    )
    assert unsafe_torch_loads([bad]) == ["bad.py:3 (relies on the default)", "bad.py:4"]
    assert remote_code_calls([bad]) == ["bad.py:6"]
    assert len(SOURCES) > 20 and all(p.is_file() for p in SOURCES)


def test_no_torch_load_without_weights_only():
    offending = unsafe_torch_loads()
    assert not offending, offending


def test_no_trust_remote_code_anywhere():
    offending = remote_code_calls()
    assert not offending, offending


def test_model_weights_load_from_safetensors(tiny_model_factory):
    from higgs_lora.model.tiny import ensure_tiny_model

    folder = ensure_tiny_model()
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
