"""The command line, one module per verb group; `main.py` builds the parser and dispatches.

This package's `__init__` imports nothing, so a verb module (and `monitor.demo`, which must not import the CLI
at all) can be imported without pulling in the parser and every other verb."""
