"""Run the workload benchmark set: page events, wall time and page events per second per file.

    python bench/workloads/run.py [--size 1g|8g|all] [--runs N] [--match TEXT] [--timeout S]
                                  [--reference] [--check] [--markdown]

Each run is a fresh interpreter that loads the file, builds the machine and runs the steps
(memcgsim.scenario.run_scenario); the time is that of the run alone, without Python's start and
the imports. Page events are the file's memcgsim.scenario.page_events (docs/limits.md). The table
gives the median of --runs runs, and the slowest file's rate is printed last. A run over
--timeout seconds is stopped and its rate shown as an upper bound. --reference turns the fast
paths off (Machine(vectorized=False)): the per-page reference paths alone. --check runs the
invariant checker after every step, as `memcgsim run --check` does.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from machine_info import describe  # noqa: E402

HERE = pathlib.Path(__file__).parent

CHILD = r"""
import json, resource, sys, time
from memcgsim.scenario import load_scenario, page_events
from memcgsim.scenario import run as run_mod
path, reference, check = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
sc = load_scenario(path)
events = sum(page_events(sc))
t0 = time.perf_counter()
res = run_mod.run_scenario(sc, check_every_step=check, reference=reference)
wall = time.perf_counter() - t0
if res.failure or not all(c.ok for c in res.checks):
    sys.exit(f"the run did not end as it should: {res.failure or 'a check failed'}")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"events": events, "wall": wall, "rss": rss}))
"""


def run_once(path: pathlib.Path, reference: bool, check: bool, timeout: float) -> dict | None:
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), "1" if reference else "0",
                               "1" if check else "0"],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode:
        sys.exit(f"{path.name}: the run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("1g", "8g", "all"), default="1g")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--match", default="", help="only files whose name contains this")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    ap.add_argument("--reference", action="store_true", help="fast paths off")
    ap.add_argument("--check", action="store_true", help="the checker after every step")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()
    sizes = ("1g", "8g") if args.size == "all" else (args.size,)
    files = sorted(p for p in HERE.glob("*.yaml")
                   if p.stem.rsplit("-", 1)[1] in sizes and args.match in p.name)
    if not files:
        sys.exit("no workload file matches")
    print(describe())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{args.runs} run(s) per file, median shown"
          + ("; fast paths off" if args.reference else "")
          + ("; checker after every step" if args.check else ""))
    rows = []
    fmt = "{:<28} {:>10} {:>10} {:>12} {:>9}"
    if args.markdown:
        print("\n| file | page events | wall (median) | page events/s | peak RSS |")
        print("|---|---:|---:|---:|---:|")
    else:
        print(fmt.format("file", "events", "wall s", "events/s", "RSS MiB"))
    for path in files:
        got = []
        for _ in range(args.runs):
            r = run_once(path, args.reference, args.check, args.timeout)
            if r is None:
                break
            got.append(r)
        if len(got) < args.runs:
            from memcgsim.scenario import load_scenario, page_events
            events = sum(page_events(load_scenario(str(path))))
            wall, rate, rss = f">{args.timeout:.0f}", f"<{events / args.timeout:,.0f}", "-"
            rows.append((events / args.timeout, path.stem))
        else:
            events = got[0]["events"]
            w = statistics.median(r["wall"] for r in got)
            wall, rate = f"{w:.2f}", f"{events / w:,.0f}"
            rss = f"{max(r['rss'] for r in got) / 2**20:.0f}"
            rows.append((events / w, path.stem))
        if args.markdown:
            print(f"| {path.stem} | {events:,} | {wall} s | {rate} | {rss} MiB |")
        else:
            print(fmt.format(path.stem, f"{events:,}", wall, rate, rss), flush=True)
    slowest = min(rows)
    print(f"\nslowest: {slowest[1]} at {slowest[0]:,.0f} page events/s "
          f"({time.strftime('%Y-%m-%d')})")


if __name__ == "__main__":
    main()
