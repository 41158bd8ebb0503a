"""Handlers of `hpt` subcommands, grouped by topic; `hpt_core.cli` builds the parser and wires them in."""
