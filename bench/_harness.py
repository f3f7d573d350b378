"""Shared by the benchmarks: the sandbox's settings and a running screening door."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "screening"]


def sandbox_env() -> dict[str, str]:
    """Start the sandbox (idempotent) and return os.environ plus its .sandbox.env."""
    subprocess.run([str(REPO / "scripts" / "sandbox"), "up"], check=True)
    env = dict(os.environ)
    for line in (REPO / ".sandbox.env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env


def screening(env: dict[str, str], *args: str) -> None:
    subprocess.run([*CLI, *args], env=env, check=True, capture_output=True)


#: What each door's log says once it takes calls.
READY = {"serve": "connected to ARI", "agi": "FastAGI listening"}


@contextmanager
def serving(
    env: dict[str, str], workdir: Path, door: str = "serve"
) -> Iterator[subprocess.Popen[bytes]]:
    """`screening serve` (ARI) or `screening agi` (FastAGI) until the block ends; then
    SIGTERM and wait."""
    # Databases cached by an earlier version of the benchmarks may be a revision behind.
    screening(env, "db", "upgrade")
    # Benchmarks run several doors at once: no /metrics unless asked for.
    env = {"SCREENING_METRICS_LISTEN": "off", **env}
    log_path = workdir / f"{door}.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen([*CLI, door], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                if READY[door] in log_path.read_text():
                    break
                time.sleep(0.1)
            yield serve
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=30)
