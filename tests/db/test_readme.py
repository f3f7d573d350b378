"""Every `screening ...` line in the CLI example blocks of README.md and docs/*.md runs, as
written: a block marked `<!-- cli-examples -->` is copy-pasteable, one database per document."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.cli_helpers import run

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = "<!-- cli-examples -->"
# A marker on a line of its own, then the block right below it.
MARKED = re.compile("^" + re.escape(MARKER) + "$", flags=re.M)
BLOCK = re.compile(re.escape(MARKER) + r"\n```sh\n(.*?)```", flags=re.S)


def example_commands(doc: Path) -> list[str]:
    """The `screening ...` lines of the document's marked blocks, comments dropped."""
    text = doc.read_text()
    blocks = [block[1] for at in MARKED.finditer(text) if (block := BLOCK.match(text, at.start()))]
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("screening ")]


def _name(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def test_every_marked_block_holds_commands() -> None:
    # A marker whose block is not a ```sh block right below it, or holds no `screening`
    # line, would be skipped in silence.
    for doc in DOCS:
        text = doc.read_text()
        for at in (m.start() for m in MARKED.finditer(text)):
            block = BLOCK.match(text, at)
            line = text.count("\n", 0, at) + 1
            assert block, f"{_name(doc)}:{line}: {MARKER} is not followed by a ```sh block"
            commands = [c for c in block.group(1).splitlines() if c.startswith("screening ")]
            assert commands, f"{_name(doc)}:{line}: a {MARKER} block without a screening command"


def test_the_docs_have_examples() -> None:
    # Never pass for want of commands: a moved file or a changed marker shows here.
    found = {_name(doc): len(example_commands(doc)) for doc in DOCS}
    assert sum(found.values()) > 60, f"too few CLI examples found in the docs: {found}"
    for doc in ("README.md", "docs/admin-guide.md", "docs/configuration.md"):
        assert found.get(doc), f"{doc} has no {MARKER} block with screening commands: {found}"


@pytest.mark.parametrize("doc", [doc for doc in DOCS if example_commands(doc)], ids=_name)
def test_the_docs_cli_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # export writes rules.csv here; import reads it back
    env = {"SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'screening.db'}"}
    assert run("db", "upgrade", env=env).code == 0
    for line in example_commands(doc):
        argv = shlex.split(line)[1:]
        if ">" in argv:  # a shell redirect: keep the command, drop the redirection
            argv = argv[: argv.index(">")]
        if "--password-file" in argv:  # the example's password file, as the admin made it
            (tmp_path / argv[argv.index("--password-file") + 1]).write_text("a long passphrase\n")
        result = run(*argv, env=env)
        assert result.code == 0, f"{_name(doc)}: {line!r} exited {result.code}: {result.err}"
