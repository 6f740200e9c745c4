"""CLI commands (filled in by later issues)."""

COMMANDS: list = []
