"""README.md's commands are real: every `higgs-lora ...` line parses with the real parser, its make targets
and documents exist. (Running them end to end on the tiny kit is what `make demo` and the per-command
tests do; this catches a renamed flag or command the moment the README and the code part.)"""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """Each `higgs-lora` command of the README: lines of its bash blocks (continuations joined, comments
    dropped) and inline `higgs-lora ...` code spans in the prose."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].endswith("higgs-lora"):
                commands.append(shlex.join(words))
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    commands += re.findall(r"`(higgs-lora [^`]+)`", prose)
    return commands


def test_the_readme_shows_the_whole_newcomer_path():
    names = [shlex.split(c)[1] for c in readme_commands() if len(shlex.split(c)) > 1]
    for step in ("convert", "validate", "plan", "train", "eval", "clone"):
        assert step in names, f"the quick start lost its {step} step"
    assert "source .venv/bin/activate" in README and ".venv/bin/higgs-lora" in README


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    from higgs_lora.cli import build_parser

    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 0 and "--help" in argv, f"README command does not parse: {command}"


def test_readme_make_targets_and_links_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+)", README, flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is not a Makefile target"
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", README)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
