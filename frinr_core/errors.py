"""The one exception type the command line turns into a one-line message instead of a traceback."""


class InputError(ValueError):
    """Bad user input: a missing or unreadable file, a wrong shape, an impossible setting."""
