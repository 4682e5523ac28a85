"""The explorer's speed: states per second and distinct states for each race set, and the time
to find each bug put back (issue 8's benchmark). Medians of --runs.

    python bench/bench_explore.py [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from memcgsim.explore import explore
from memcgsim.races import INJECTIONS, RACE_SETS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    for name, race in RACE_SETS.items():
        times, states = [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = explore(race)
            times.append(time.perf_counter() - t0)
            states = out.states
        wall = statistics.median(times)
        print(f"{name:<32} {states:>6} states  {out.schedules:>4} schedules  "
              f"{wall * 1000:8.1f} ms  {states / wall:10,.0f} states/s")
    for bug, (_, race) in INJECTIONS.items():
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = explore(RACE_SETS[race], inject=[bug])
            times.append(time.perf_counter() - t0)
            assert out.violation
        print(f"--inject {bug:<22} found in {statistics.median(times) * 1000:8.1f} ms "
              f"({race})")


if __name__ == "__main__":
    main()
