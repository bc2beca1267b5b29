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


class DamagedClipError(MediaError):
    """A clip in a store whose bytes no longer decode (or decode to nonsense); names the store and the clip."""

    def __init__(
        self, message: str, hint: str | None = None, *, clip: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(
            message,
            hint
            or "`gsavl inspect --verify STORE` lists every damaged clip; "
            "--skip-bad leaves them out, or preprocess those clips again",
        )
        self.clip, self.reason = clip, reason or message


def unwrap_worker_message(message: str) -> str:
    """A DataLoader worker's re-raised error carries the whole traceback: keep the original message."""
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return message
    last = next((line for line in reversed(message.splitlines()) if line.strip()), message)
    return (
        last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].rsplit(".", 1)[-1].endswith("Error") else last
    )
