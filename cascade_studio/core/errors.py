"""The one base class for errors the user can cause and fix (a bad file, URL, tier number, key).

Raise a subclass with a message that names the problem and the fix. The CLI prints it as
`error: <message>` and exits with `code`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can act on; `code` is the CLI exit status (1: failed, 2: usage)."""

    code: int = 1

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
