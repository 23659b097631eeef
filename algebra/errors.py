"""The one exception type that user-facing errors in optinv raise."""


class OptinvError(ValueError):
    """Bad input to optinv: the message names the argument and what was expected."""
