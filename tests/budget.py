"""Example budgets that follow the active hypothesis profile (``OPTINV_HYPOTHESIS_PROFILE``)."""

from hypothesis import settings


def scaled(n: int) -> int:
    """``n`` examples under the default profile (25 examples), proportionally more under ``thorough``."""
    return max(1, n * settings.default.max_examples // 25)
