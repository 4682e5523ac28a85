"""Wall time of `memcgsim run` on a small scenario, interpreter start included.

Runs `python -m memcgsim run FILE` as a fresh process several times and prints the median, so
the figure includes Python's start, the imports and the run itself.

    python bench/bench_run.py [FILE] [--runs N]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import time

from machine_info import describe

DEFAULT = pathlib.Path(__file__).parent.parent / "examples" / "first-touch.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "memcgsim", "run", args.file],
                              stdout=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
        if done.returncode:
            sys.exit(f"memcgsim run exited {done.returncode}")
    print(describe())
    print(f"memcgsim run {args.file}: median {statistics.median(times) * 1e3:.0f} ms wall over "
          f"{args.runs} runs (min {min(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
