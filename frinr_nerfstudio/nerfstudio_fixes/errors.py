"""A bad scene found by our checks ends an ``ns-*`` command in one line, as ``frinr`` prints it, not a traceback.

Only :class:`~frinr_core.errors.InputError` is affected (raised by our code alone); every other exception keeps
nerfstudio's traceback, so built-in methods behave as stock.
"""

from __future__ import annotations

import sys

from frinr_core.errors import InputError, first_line


def _one_line(previous):
    def hook(kind, error, traceback) -> None:
        if issubclass(kind, InputError):
            print(f"frinr: error: {first_line(error)}", file=sys.stderr)
        else:
            previous(kind, error, traceback)

    hook.frinr = True
    return hook


def print_input_errors_in_one_line() -> None:
    """Wrap ``sys.excepthook`` (idempotent)."""
    if not getattr(sys.excepthook, "frinr", False):
        sys.excepthook = _one_line(sys.excepthook)
