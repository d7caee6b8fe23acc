"""The one exception type the command line turns into a one-line message instead of a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what one-line errors show."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class InputError(ValueError):
    """Bad user input: a missing or unreadable file, a wrong shape, an impossible setting."""
