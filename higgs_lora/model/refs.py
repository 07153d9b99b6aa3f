"""What a weights name means: `tiny`, a local folder, or a hub repository pinned to a revision.

Boson rewrote its hub repositories in place on 2026-04-04 for transformers' native Higgs Audio v2
(flattened config, `model_type: higgs_audio_v2`, renamed weights; the tokenizer moved from
`model.pth` to `model.safetensors`). boson_multimodal 0.1.1 reads neither, so every hub access here
names a revision, and the defaults are the last revisions in the format it reads. A name is:

- `tiny`                       the offline random-weight kit (tests, demo);
- a local folder               e.g. staged by `higgs-lora download` for clusters without network;
- `owner/repo@REVISION`        a hub repository at a commit, branch or tag;
- `owner/repo`                 the same at `main` (with a warning for Boson's rewritten repositories).

Names become folders in model/resolve.py; folders are checked in model/folder_checks.py before anything
loads them (a native-format folder is converted once, native/imports.py); model/provenance.py records
what a name resolved to; model/staging.py stages folders for offline machines.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..defaults import MODEL_REPO, MODEL_REVISION, TOKENIZER_REPO, TOKENIZER_REVISION

log = logging.getLogger(__name__)

# The codec's constructor loads this HuBERT by name. No verified commit of it is known to this project,
# so it follows `main` unless HIGGS_LORA_SEMANTIC_TEACHER names `repo@revision` or a folder; a codec
# folder staged by `higgs-lora download` carries its own copy in `semantic_teacher/`.
SEMANTIC_TEACHER_REPO = "bosonai/hubert_base"
SEMANTIC_TEACHER_DIR = "semantic_teacher"

PINNED = {MODEL_REPO: MODEL_REVISION, TOKENIZER_REPO: TOKENIZER_REVISION}

DOWNLOAD_HINT = "`higgs-lora download --output_dir weights` stages the pinned model and codec as local folders"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class WeightsError(ValueError):
    """Weights that cannot be used as named: wrong format, missing files, or hub out of reach."""


@dataclass(frozen=True)
class HubRef:
    repo: str
    revision: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}"


def parse_ref(name: str) -> HubRef | None:
    """`owner/repo[@revision]` -> HubRef; None for `tiny` and for existing local folders."""
    if name == "tiny" or Path(name).expanduser().exists():
        return None
    repo, sep, revision = name.partition("@")
    # Only the repo part counts slashes: a revision may hold some (`refs/pr/1`, a `release/v1` branch).
    if name.startswith(("/", ".", "~")) or repo.count("/") > 1:
        raise WeightsError(
            f"{name}: no such folder (expected a model folder, a hub id owner/repo[@revision] or `tiny`)"
        )
    if not _REPO_ID.match(repo) or (sep and not revision):
        raise WeightsError(f"{name!r} is neither a folder, `tiny`, nor a hub id (owner/repo or owner/repo@revision)")
    if not sep:
        revision = "main"
        if repo in PINNED:
            log.warning(
                "%s without a revision means its newest files (main), which boson_multimodal 0.1.1 cannot "
                "read since Boson's 2026-04 rewrite; the default %s@%s works",
                repo,
                repo,
                PINNED[repo],
            )
    return HubRef(repo, revision)


def pinned(repo: str) -> str:
    return f"{repo}@{PINNED[repo]}"
