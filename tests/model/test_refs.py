"""Weight names: `owner/repo@revision` parsed, and the defaults pinned to the revisions boson reads."""

import logging

import pytest

from higgs_lora.defaults import AUDIO_TOKENIZER, BASE_MODEL, MODEL_REPO, MODEL_REVISION, TOKENIZER_REPO
from higgs_lora.model.refs import HubRef, WeightsError, parse_ref


def test_parse_ref(tmp_path, caplog):
    assert parse_ref("owner/repo@abc123") == HubRef("owner/repo", "abc123")
    assert parse_ref("owner/repo@v1.0") == HubRef("owner/repo", "v1.0")
    assert str(parse_ref("a/b@c")) == "a/b@c"
    assert parse_ref("owner/repo@refs/pr/1") == HubRef("owner/repo", "refs/pr/1")  # slashes in a revision
    assert parse_ref("tiny") is None
    assert parse_ref(str(tmp_path)) is None  # an existing folder is a folder, whatever its name
    with caplog.at_level(logging.WARNING):
        assert parse_ref("someone/model") == HubRef("someone/model", "main")
    assert not caplog.records  # plain repos of others mean main, quietly
    with caplog.at_level(logging.WARNING):
        assert parse_ref(MODEL_REPO) == HubRef(MODEL_REPO, "main")
    assert MODEL_REVISION in caplog.text and "main" in caplog.text  # Boson's rewritten repos warn
    for bad in ("no-slash", "a/b@", "a b/c"):
        with pytest.raises(WeightsError, match="hub id"):
            parse_ref(bad)
    for missing_folder in ("a/b/c", "/abs/path/that/does/not/exist", "./model", str(tmp_path / "gone")):
        with pytest.raises(WeightsError, match="no such folder"):
            parse_ref(missing_folder)


def test_defaults_are_pinned():
    assert parse_ref(BASE_MODEL) == HubRef(MODEL_REPO, "10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84")
    assert parse_ref(AUDIO_TOKENIZER) == HubRef(TOKENIZER_REPO, "9d4988fbd4ad07b4cac3a5fa462741a41810dbec")
