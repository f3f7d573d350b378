"""The admin door: the CLI commands, input parsing, admin operations and CSV."""
