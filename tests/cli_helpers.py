"""Run the `screening` command the way an admin does: a subprocess with environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str


def screening(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "screening", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
    """`screening ARGS` in this process: the same entry point, argv parsing and exit codes as
    the installed command, without the cost of starting Python for each call."""
    import contextlib
    import io

    from screening.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_stdin = dict(os.environ), sys.stdin
    os.environ.update(env or {})
    sys.stdin = io.StringIO(stdin)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdin = saved_stdin
    return Result(code, out.getvalue(), err.getvalue())


Cli = Callable[..., Result]


def ok(result: Result) -> str:
    """The output of a command that must succeed (its stderr in the failure message)."""
    assert result.code == 0, result.err
    return result.out


def start_web(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """`screening web` on 127.0.0.1:port with `env` over this process's environment, once it
    answers; the test fails with its log when it does not start."""
    import httpx  # only the console tests need it
    import pytest

    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "screening", "web", "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, **env},
        stdout=log,
        stderr=log,
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1, trust_env=False)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"screening web did not start:\n{log_path.read_text()}")
