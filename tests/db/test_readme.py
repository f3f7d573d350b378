"""Every `screening ...` line in the README's CLI example blocks runs, as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.cli_helpers import run

README = Path(__file__).resolve().parents[2] / "README.md"


def example_commands() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"<!-- cli-examples -->\n```sh\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("screening ")]


def test_readme_has_examples() -> None:
    assert len(example_commands()) > 30


@pytest.mark.parametrize("backend", ["sqlite"])
def test_readme_cli_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.chdir(tmp_path)  # export writes rules.csv here; import reads it back
    env = {"SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'screening.db'}"}
    assert run("db", "upgrade", env=env).code == 0
    for line in example_commands():
        argv = shlex.split(line)[1:]
        if ">" in argv:  # a shell redirect: keep the command, drop the redirection
            argv = argv[: argv.index(">")]
        if "--password-file" in argv:  # the example's password file, as the admin made it
            (tmp_path / argv[argv.index("--password-file") + 1]).write_text("a long passphrase\n")
        result = run(*argv, env=env)
        assert result.code == 0, f"{line!r} exited {result.code}: {result.err}"
