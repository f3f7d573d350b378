"""The `screening` command (and `python -m screening`).

Every command but `serve` lowers its own CPU priority before it loads anything: on a small
PBX an admin command starting up, or a big import, would otherwise take a core from call
set-up (tests/e2e/test_concurrency.py saw calls wait 60 ms instead of 8 without this).
"""

import os
import sys


def main() -> None:
    if "serve" not in sys.argv[1:]:
        os.nice(10)
    from screening.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
