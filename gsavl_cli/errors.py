"""Exceptions that the CLI turns into one clear line and an exit code.

Library code raises these instead of printing, so that `localize` on one clip and
`eval` on ten thousand report problems the same way.
"""


class GsavlError(Exception):
    """A failure the user can act on; `hint` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(GsavlError):
    """Bad input from the user: missing file, unknown name, corrupt video, missing weights."""

    exit_code = 2


class MediaError(UsageError):
    """A video or audio file that cannot be decoded as asked."""


class WeightsError(UsageError):
    """Pretrained weights that cannot be found, downloaded or verified."""
