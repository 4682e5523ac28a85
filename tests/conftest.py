import os

from hypothesis import HealthCheck, settings

for name, examples, steps in (("default", 200, 40), ("ci", 1000, 40), ("long", 5000, 60)):
    settings.register_profile(
        name, max_examples=examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
