"""User-facing errors.

Anything raised as :class:`KansegError` is printed by the CLI as one line (``error: ...``) with a
non-zero exit code, never as a traceback. Library callers can catch it like any exception.
"""


class KansegError(Exception):
    """An error caused by user input (bad path, unknown name, corrupt file...)."""

    exit_code = 2
