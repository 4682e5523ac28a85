import os

from hypothesis import HealthCheck, settings

for name, examples, steps in (("default", 200, 40), ("ci", 1000, 40), ("long", 5000, 60)):
    settings.register_profile(
        name, max_examples=examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

if os.environ.get("MEMCGSIM_CHECK_LRU_TAILS", "") not in ("", "0"):
    # every look at an LRU list checked against a scan of mem_map (memcgsim.kernel)
    import memcgsim.kernel

    memcgsim.kernel.CHECK_LRU_TAILS = True
