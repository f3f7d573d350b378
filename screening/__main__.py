"""The `screening` command (and `python -m screening`).

Every command but the doors (`serve`, `agi`) gives up the CPU to call handling before it
loads anything: on a small PBX an admin command starting up, or a big import, would
otherwise take a core from call set-up (tests/e2e/test_concurrency.py saw calls wait 60 ms
instead of 8 without this).
"""

import contextlib
import os
import sys


def yield_to_calls() -> None:
    """Run at SCHED_IDLE: the command gets only CPU that nothing else wants, and any
    ready Asterisk or door thread preempts it at once, where `nice` still lets it finish
    its time slice first. Where SCHED_IDLE is not available, nice 10."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        # A sandbox that forbids both: run as we are.
        with contextlib.suppress(OSError):
            os.nice(10)


def main() -> None:
    if not {"serve", "agi"} & set(sys.argv[1:]):
        yield_to_calls()
    from screening.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
