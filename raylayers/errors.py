"""The one exception type for a user's mistake.

The CLI turns a `UserError` into one line on stderr and a non-zero exit; anything else is a bug and keeps its
traceback. Raise it (or a subclass) for bad paths, bad records, bad flags and bad YAML keys, with a message that
names the file, record or key and states the numbers.
"""


class UserError(Exception):
    """A mistake in the user's input; its message is shown as is, on one line."""


def user_error_in(text: str) -> str | None:
    """The message of a `UserError` raised in another process (a Ray worker or trial), found in the error text Ray
    carries back with its traceback; None when there is none."""
    marker = "raylayers.errors.UserError: "
    if marker not in text:
        return None
    return text.split(marker, 1)[1].splitlines()[0].strip()
