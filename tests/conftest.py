"""Shared test setup: torch imported once, and a deterministic hypothesis profile."""

import os

# Importing torch takes seconds; doing it here, once, keeps AppTest's per-script timeout for the app itself.
import torch  # noqa: F401
from hypothesis import HealthCheck, settings

# deadline=None: a lib.run call includes torch start-up work whose time varies on a shared machine.
# derandomize=True: the same examples every run, so a red test is reproducible and CI never flakes.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
