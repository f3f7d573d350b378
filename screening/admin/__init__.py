"""The admin door: the `screening` commands, one module per command group; thin wrappers
that parse, call the services, and print. screening.cli assembles them.

Human output by default (aligned tables, local times), `--json` for scripts. Errors are one
line naming the field; exit 2 for bad input, 1 for runtime failures.
"""
