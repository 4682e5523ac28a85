import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=200, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", max_examples=1000, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
settings.register_profile(
    "long", max_examples=5000, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
