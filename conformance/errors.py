"""The one exception type the CLI turns into a single line and exit code 2."""


class UsageError(Exception):
    """The user's input was wrong; the message says what and how to fix it."""
