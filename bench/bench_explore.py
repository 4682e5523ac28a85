"""The explorer's speed (issue 8's benchmark): for each standard race set, distinct states,
steps run and states per second with and without the partial-order reduction; then the time to
find each injected bug (including the breadth-first pass that shortens the counterexample).
Medians of --runs.

    python bench/bench_explore.py [--runs N] [--no-full]
"""

from __future__ import annotations

import argparse
import statistics
import time

from machine_info import describe
from memcgsim.explore import explore
from memcgsim.races import INJECTIONS, RACE_SETS


def _median(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-full", action="store_true", help="skip the runs without reduction")
    args = ap.parse_args()
    print(f"{describe()}; median of {args.runs} runs")
    print(f"{'race set':<34} {'paths':>5} {'states':>7} {'steps':>6} {'full steps':>10} "
          f"{'time':>9} {'states/s':>9}")
    total_states = total_time = 0.0
    for name, race in RACE_SETS.items():
        wall, out = _median(lambda race=race: explore(race), args.runs)
        assert out.violation is None, (name, out.violation)
        full = "-" if args.no_full else str(explore(race, por=False).transitions)
        total_states += out.states
        total_time += wall
        print(f"{name:<34} {len(race.paths):>5} {out.states:>7} {out.transitions:>6} "
              f"{full:>10} {wall * 1000:7.1f}ms {out.states / wall:9,.0f}")
    print(f"{'all standard sets':<34} {'':>5} {int(total_states):>7} {'':>6} {'':>10} "
          f"{total_time * 1000:7.1f}ms {total_states / total_time:9,.0f}")
    for bug, (_, race) in INJECTIONS.items():
        wall, out = _median(lambda race=race, bug=bug: explore(RACE_SETS[race], inject=[bug]),
                            args.runs)
        assert out.violation
        print(f"--inject {bug:<13} found in {wall * 1000:7.1f} ms, counterexample of "
              f"{len(out.schedule):>2} steps ({race}): {out.violation[:60]}")


if __name__ == "__main__":
    main()
