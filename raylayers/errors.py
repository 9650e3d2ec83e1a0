"""The one exception type for a user's mistake.

The CLI turns a `UserError` into one line on stderr and a non-zero exit; anything else is a bug and keeps its
traceback. Raise it (or a subclass) for bad paths, bad records, bad flags and bad YAML keys, with a message that
names the file, record or key and states the numbers.
"""


class UserError(Exception):
    """A mistake in the user's input; its message is shown as is, on one line."""
