"""The CLI's commands, one module each (parsed in conformance/cli.py)."""
