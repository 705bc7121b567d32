"""User-facing errors.

Anything raised as :class:`KansegError` is printed by the CLI as one line (``error: ...``) with a
non-zero exit code, never as a traceback. Library callers can catch it like any exception.
"""


class KansegError(Exception):
    """An error caused by user input (bad path, unknown name, corrupt file...)."""

    exit_code = 2


class Interrupted(KansegError):
    """Ctrl-C (SIGINT) during a long command: the message says what was finished and how to go on.

    The CLI prints it as ``interrupted: ...`` and exits with 130 (128 + SIGINT), like a shell. An empty
    message (the non-main processes of a distributed run) prints nothing.
    """

    exit_code = 130
