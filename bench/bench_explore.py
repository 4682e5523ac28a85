"""The explorer's speed (issue 8's benchmark): for each standard race set, distinct states,
steps run and states per second with and without the partial-order reduction; then the time to
find each injected bug (including the breadth-first pass that shortens the counterexample);
then where the time goes on the largest set, against what the model's kernel steps cost alone.
Medians of --runs.

    python bench/bench_explore.py [--runs N] [--no-full]
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import time

from machine_info import describe
from memcgsim.explore import explore
from memcgsim.machine import Machine
from memcgsim.mm.locking import Lock, TryLock, Unlock
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
    where_the_time_goes("migrate-vs-truncate-vs-reclaim", args.runs)


def model_step_cost(race, walks: int = 300, seed: int = 0) -> tuple[float, float]:
    """The floor under any explorer built on these paths: microseconds per kernel step with
    nothing but the paths running (plain arrays, no hashing, checking or footprints), and per
    machine loaded from a pickled setup. Random complete schedules."""
    m = Machine(vectorized=False, **race.machine)
    ctx = race.setup(m)
    snap = pickle.dumps((m, ctx))
    rng = random.Random(seed)
    t_step = t_load = 0.0
    steps = 0
    for _ in range(walks):
        t0 = time.perf_counter()
        m, ctx = pickle.loads(snap)
        t_load += time.perf_counter() - t0
        k = m.k
        started = [factory(m, ctx) for _, factory in race.paths]
        gens = [g for _, g in started]
        tasks = [t for t, _ in started]
        send, wait, live = [None] * len(gens), [None] * len(gens), set(range(len(gens)))
        while live:
            ready = [i for i in sorted(live) if wait[i] is None or not k.locks.is_held(wait[i])]
            i = rng.choice(ready)
            t0 = time.perf_counter()
            if wait[i] is not None:
                k.locks.try_acquire(wait[i], i + 1)
                wait[i] = None
            k.current = tasks[i]
            try:
                req = gens[i].send(send[i])
            except StopIteration:
                live.discard(i)
                req = None
            send[i] = None
            if isinstance(req, Lock) and not k.locks.try_acquire(req.lock, i + 1):
                wait[i] = req.lock
            elif isinstance(req, TryLock):
                send[i] = k.locks.try_acquire(req.lock, i + 1)
            elif isinstance(req, Unlock):
                k.locks.release(req.lock, i + 1)
            t_step += time.perf_counter() - t0
            steps += 1
    return t_step / steps * 1e6, t_load / walks * 1e6


def where_the_time_goes(name: str, runs: int) -> None:
    race = RACE_SETS[name]
    wall, out = _median(lambda: explore(race), runs)
    step_us, load_us = statistics.median(model_step_cost(race, seed=s) for s in range(runs))
    per_state = wall / out.states * 1e6
    model = (out.transitions + out.replayed_steps) * step_us + out.replays * load_us
    print(f"\n{name}: {per_state:.0f} us per distinct state; per state "
          f"{out.transitions / out.states:.2f} new steps, {out.replays / out.states:.2f} "
          f"replays of {out.replayed_steps / max(out.replays, 1):.1f} steps")
    print(f"  a kernel step alone costs {step_us:.1f} us and loading the setup {load_us:.0f} us:"
          f" {model / out.states:.0f} us per state, {100 * model / (wall * 1e6):.0f}% of the "
          f"search; the rest is hashing, footprints and checking")
    print(f"  with no explorer overhead at all and no replays: at most "
          f"{out.states / (out.transitions * step_us / 1e6):,.0f} states/s")


if __name__ == "__main__":
    main()
