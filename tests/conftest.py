"""Shared pytest set-up: hypothesis profiles for the whole suite.

``OPTINV_HYPOTHESIS_PROFILE=thorough pytest`` runs every property with many more
examples; the default profile keeps the suite fast (no deadline: the first call
of a property may build and cache contraction paths).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "optinv",
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("optinv"), max_examples=300)
settings.load_profile(os.environ.get("OPTINV_HYPOTHESIS_PROFILE", "optinv"))
