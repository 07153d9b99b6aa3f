"""The hub, faked offline: `huggingface_hub.snapshot_download` replaced by a recorder that serves fake
snapshots from disk: the released layout shrunk to tiny sizes (the tiny model folder, whose nested config
is the released one at small sizes), the 2026-04 transformers-native layout (flattened `higgs_audio_v2`
config), and codec folders with and without `model.pth` (the fixtures in tests/model/conftest.py).
"""

import json
import shutil
from pathlib import Path

from higgs_lora.model.tiny import ensure_tiny_model


def old_model_snapshot(root: Path) -> Path:
    """The format boson_multimodal reads: nested text_config, model_type higgs_audio (the tiny kit)."""
    folder = root / "old_model"
    shutil.copytree(ensure_tiny_model(), folder)
    (folder / "demo.wav").write_bytes(b"RIFF")  # the real repos hold media too
    return folder


def new_model_snapshot(root: Path) -> Path:
    """The 2026-04 rewrite: flattened config, model_type higgs_audio_v2, renamed weights."""
    folder = root / "new_model"
    folder.mkdir()
    config = json.loads((ensure_tiny_model() / "config.json").read_text())
    flat = {k: v for k, v in config.items() if k != "text_config"} | config["text_config"]
    flat["model_type"] = "higgs_audio_v2"
    (folder / "config.json").write_text(json.dumps(flat))
    shutil.copy(ensure_tiny_model() / "model.safetensors", folder / "model.safetensors")
    return folder


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: records each call, serves folders by repo."""

    def __init__(self, folders: dict[str, Path]):
        self.folders = folders
        self.calls: list[dict] = []

    def __call__(self, repo_id, revision=None, allow_patterns=None, local_dir=None, **kwargs):
        self.calls.append(
            {"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns, "local_dir": local_dir}
        )
        if repo_id not in self.folders:
            raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {repo_id}")
        source = self.folders[repo_id]
        if local_dir is None:
            return str(source)
        target = Path(local_dir)
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and any(Path(path.name).match(p) for p in allow_patterns or ["*"]):
                shutil.copy(path, target / path.name)
        return str(target)
