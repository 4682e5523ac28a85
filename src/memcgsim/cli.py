"""The command line: parse argv, call the library, print, and map outcomes to exit codes.

    0  success
    1  the model raised an error (a kernel BUG, a deadlock, a demo step that went differently)
    2  bad arguments (argparse)
    3  the invariant checker found violations
    4  validate: the real-kernel set-up or the guest failed

Only this module prints. It imports the model lazily, inside the commands, so that
`memcgsim --help` does not load it.
"""

from __future__ import annotations

import argparse
import os
import sys

from .status import Exit

EXIT_OK, EXIT_ERROR, EXIT_INVALID = Exit.OK, Exit.ERROR, Exit.INVALID
EXIT_VIOLATIONS, EXIT_SETUP = Exit.VIOLATIONS, Exit.SETUP


class _VersionAction(argparse.Action):
    """--version, looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("memcgsim")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        parser.exit(message=f"memcgsim {v}\n")


def cmd_demo(args: argparse.Namespace) -> int:
    """The built-in default job: the guided page lifecycle, checked after every step."""
    from . import demo
    from .checker import InvariantViolation

    result = demo.run()
    print("\n".join(result.lines))
    if not result.ok:
        sys.stdout.flush()
        print(f"memcgsim demo: invariants violated after step {result.failed_step}",
              file=sys.stderr)
        print(InvariantViolation(result.kernel, result.violations), file=sys.stderr)
        return EXIT_VIOLATIONS
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run scenario files: reports as the cgroup files show them, then the expectations."""
    import json

    from .report import render_json, render_text
    from .scenario import Limits, ScenarioError, load_scenario, run_scenario

    limits = Limits()
    for spec in args.limit:
        name, _, value = spec.partition("=")
        if name not in Limits.names():
            print(f"memcgsim run: --limit {spec}: unknown limit {name!r}: want one of "
                  f"{', '.join(Limits.names())}", file=sys.stderr)
            return EXIT_INVALID
        if not value.isdigit() or len(value) > 20 or int(value) < 1:
            print(f"memcgsim run: --limit {spec}: want {name}=N, N a whole number >= 1",
                  file=sys.stderr)
            return EXIT_INVALID
        limits = limits.raised(name, int(value))
    targets = []
    if args.plot:
        targets = [args.plot] if len(args.files) == 1 else [
            _numbered(args.plot, i) for i in range(len(args.files))]
        for target in targets:
            problem = _output_problem(target, args.force, plot=True)
            if problem:
                print(f"memcgsim run: --plot {target}: {problem}", file=sys.stderr)
                return EXIT_INVALID
    worst = EXIT_OK
    scenarios = []
    for path in args.files:
        try:
            scenarios.append(load_scenario(path, limits=limits))
        except ScenarioError as e:
            print(f"{e}", file=sys.stderr)
            worst = EXIT_INVALID
    if worst:
        return worst
    docs = []
    for i, sc in enumerate(scenarios):
        try:
            with _Progress(sc) as progress:
                result = run_scenario(sc, check_every_step=args.check, trace=args.trace,
                                      reference=args.reference, on_step=progress.step)
        except MemoryError:
            print(f"memcgsim run: {sc.file}: this machine has not the memory to model it; "
                  "lower the --limit values you raised (docs/limits.md)", file=sys.stderr)
            return EXIT_ERROR
        if args.plot:
            from .plot import plot_run

            try:
                plot_run(result, targets[i])
            except RuntimeError as e:
                print(f"memcgsim: {e}", file=sys.stderr)
                return EXIT_ERROR
            except OSError as e:
                print(f"memcgsim run: --plot {targets[i]}: {e.strerror or e}", file=sys.stderr)
                return EXIT_INVALID
        if args.json:
            docs.append(render_json(result))
        elif args.prometheus:
            from .metrics import prometheus_text

            print(prometheus_text(result.reports), end="")
        else:
            print(render_text(result), end="")
        worst = max(worst, result.exit_status)
    if args.json:
        print(json.dumps(docs if len(docs) > 1 else docs[0], indent=2))
    return worst


class _Progress:
    """A rich progress bar on stderr for runs that take over a second, advancing by the page
    events of each step (docs/limits.md) and showing their rate; nothing when stderr is not a
    terminal."""

    def __init__(self, scenario):
        import time

        from .scenario import page_events

        self.costs = page_events(scenario)
        self.name = scenario.file
        self.clock = time.monotonic
        self.start = self.clock()
        self.done = 0
        self.bar = None
        self.task = None
        self.enabled = sys.stderr.isatty()

    def __enter__(self):
        return self

    def step(self, index, step, machine) -> None:
        self.done += self.costs[index]
        if not self.enabled:
            return
        elapsed = self.clock() - self.start
        if self.bar is None:
            if elapsed < 1.0:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.name, total=max(sum(self.costs), 1))
        self.bar.update(self.task, completed=self.done,
                        description=f"{self.name}: {step.kind} (line {step.where.line}), "
                                    f"{self.done / elapsed:,.0f} page events/s")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


#: what --plot can write (matplotlib's Agg canvas, by file name extension)
PLOT_FORMATS = ("png", "svg", "svgz", "pdf", "eps", "ps", "jpg", "jpeg", "webp", "tif", "tiff")


def _output_problem(path: str, force: bool, plot: bool = False) -> str | None:
    """Why a file cannot be written at path, checked before any work is done: it exists
    (and force is not given), its folder is missing, or plot output has no known format."""
    if os.path.isdir(path):
        return "is a folder"
    if os.path.lexists(path) and not force:
        return "exists: not overwritten (use --force to replace it)"
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return f"no folder {folder}"
    if not os.access(folder, os.W_OK):
        return f"cannot write in {folder}"
    ext = path.rpartition(".")[2].lower() if "." in os.path.basename(path) else ""
    if plot and ext not in PLOT_FORMATS:
        return (f"unknown picture format {ext!r}: " if ext else "no file extension: ") + \
            f"want one of {', '.join('.' + f for f in PLOT_FORMATS)}"
    return None


def _numbered(path: str, i: int) -> str:
    """out.png -> out-1.png, out-2.png ... when several files are run."""
    stem, dot, ext = path.rpartition(".")
    return f"{stem}-{i + 1}.{ext}" if dot else f"{path}-{i + 1}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memcgsim",
        description="An executable model of Linux memory-cgroup page accounting "
                    "(the 3.17 charge/uncharge API, cgroup v1). Without a command, runs the demo.")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.set_defaults(func=cmd_demo, check=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "demo", help="walk one anonymous and one page-cache page through their charge "
                     "lifecycle (the default)",
        description="Fault, swap out, swap in, migrate and unmap one anonymous page, then "
                    "write, splice, map and truncate one page-cache page, on a 16 MiB machine "
                    "with a cgroup /a. Prints usage, memsw, memory.stat and the page's "
                    "page_cgroup after every step; exits 3 if an invariant breaks.")
    p.add_argument("--check", action="store_true", default=True,
                   help="check the invariants after every step (always on for the demo)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "run", help="run scenario files (format 1) and check their expectations",
        description="Run each scenario file on a fresh model machine. At each report step "
                    "print the cgroup files as /sys/fs/cgroup shows them; check every expect "
                    "step. Exit 0 when every expectation holds, 1 when one fails (or a step "
                    "fails), 2 when a file is invalid, 3 when the invariant checker finds a "
                    "violation (--check).")
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario files (YAML)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the results as JSON")
    out.add_argument("--prometheus", action="store_true",
                     help="print the cAdvisor container_memory_* metrics of every report in "
                          "the Prometheus text format (labels cgroup and report)")
    p.add_argument("--check", action="store_true",
                   help="run the invariant checker after every step (exit 3 on a violation)")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw memory and swap of each cgroup over the steps, with OOM kills "
                        "and limit changes marked (needs matplotlib)")
    p.add_argument("--force", action="store_true",
                   help="let --plot replace a file that exists")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help="raise a bound that is checked before the run (pages, cpus, "
                        "cgroups, tasks, page-events; see docs/limits.md)")
    p.add_argument("--trace", action="store_true",
                   help="print, under each step, every memcg call (try_charge, commit, "
                        "uncharge, swapout, ...) with its page and the counters it changed "
                        "(res and memsw in pages, statistics in bytes)")
    p.add_argument("--reference", action="store_true",
                   help="run only the per-page reference paths, without the fast (array) "
                        "paths: slower, and the same output")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "conformance", help="run the conformance suite (the LTP and kernel selftest cases) "
                            "and print a table",
        description="Run every case file (tests/conformance/*.yaml of a source checkout, or "
                    "DIR) with the invariant checker on, and print a table: case, feature "
                    "tags, pass or fail, and the value seen against the value expected. Exit 0 "
                    "when every case passes, 1 when one fails, 2 when DIR holds no case.")
    p.add_argument("dir", nargs="?", default="tests/conformance", metavar="DIR")
    p.set_defaults(func=cmd_conformance)
    p = sub.add_parser(
        "explore", help="run racing kernel paths over their interleavings, checking every state",
        description="Explore every interleaving of the paths of each named race set (all of "
                    "them without names), depth first, skipping states already seen, with the "
                    "invariant checker after every step. Exit 0 when no schedule breaks "
                    "anything, 1 with the first counterexample, 2 for an unknown name.")
    p.add_argument("races", nargs="*", metavar="RACE",
                   help="race set names (see --list) or race files (*.yaml, see "
                        "docs/explore-format.md)")
    p.add_argument("--inject", action="append", default=[], metavar="BUG",
                   help="put a historical bug back (see --list); alone, runs the race set "
                        "that shows it")
    p.add_argument("--max-states", type=int, default=200000,
                   help="stop after this many distinct states")
    p.add_argument("--no-por", action="store_true",
                   help="explore without the partial-order reduction (sleep sets)")
    p.add_argument("--random", type=int, metavar="WALKS",
                   help="instead of every schedule, WALKS seeded random ones")
    p.add_argument("--seed", type=int, default=0, help="the random walks' seed")
    p.add_argument("--list", action="store_true", help="list the race sets and the bugs")
    p.set_defaults(func=cmd_explore)
    p = sub.add_parser(
        "validate", help="run scenarios on a real Debian kernel under QEMU and in the model, "
                         "side by side",
        description="Boot Debian's 6.1 or 6.12 kernel under qemu-system-x86_64 (TCG), run "
                    "each scenario in its own cgroup, read every memory.* file at each report "
                    "and expect, run the same scenario in the model, and compare them key by "
                    "key (exact, or within the tolerance each rule states). The first use sets "
                    "up a cache (Debian packages, kernels, a static workload program). Exit 0 "
                    "when the model matches, 1 when it does not, 2 for a file or step the guest "
                    "cannot run, 4 when the set-up or the guest fails.")
    p.add_argument("files", nargs="*", metavar="FILE", help="scenario files (YAML)")
    p.add_argument("--kernel", action="append", choices=["6.1", "6.12"],
                   help="the real kernel (default: the scenario's, 6.1 for 3.17 files); with "
                        "--setup, may be given twice")
    p.add_argument("--setup", action="store_true",
                   help="install what is missing and fill the cache (then run FILEs, if any)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--runs", type=int, default=3, metavar="K",
                   help="boot each kernel K times and compare the model with the range of "
                        "values the runs showed (default 3)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--all", action="store_true",
                      help="list every key, compared or not, not only those that differ")
    show.add_argument("--brief", action="store_true",
                      help="list only the values that fail their rule (by default values "
                           "that differ within the rule's tolerance are listed too)")
    p.add_argument("--markdown", action="store_true",
                   help="print the results as the Markdown tables of docs/fidelity.md")
    p.add_argument("--record", metavar="OUT",
                   help="also write what the kernel showed to OUT (JSON; gzip-compressed "
                        "if OUT ends in .gz), to compare a changed model with it later by "
                        "--replay")
    p.add_argument("--replay", metavar="IN", action="append",
                   help="compare with kernel runs recorded by --record instead of booting "
                        "(may be given more than once)")
    p.add_argument("-v", "--verbose", action="store_true", help="log the set-up's commands")
    p.set_defaults(func=cmd_validate)
    return parser


def cmd_validate(args) -> int:
    """Run scenarios on a real Debian kernel under QEMU and in the model, side by side."""
    import json
    import time

    from .errors import InvalidRequest
    from .scenario import ScenarioError, load_scenario
    from .validate import cache
    from .validate.guest import Unsupported

    log = (lambda s: print(f"memcgsim validate: {s}", file=sys.stderr)) if args.verbose else (
        lambda s: None)
    if args.setup:
        t0 = time.monotonic()
        try:
            kernels = cache.setup(args.kernel or list(cache.SERIES), log=log)
        except cache.SetupError as e:
            print(f"memcgsim validate: setup failed: {e}", file=sys.stderr)
            return EXIT_SETUP
        for k in kernels.values():
            print(f"{k.series}: {k.release} ({k.vmlinux.parent})")
        print(f"set up in {time.monotonic() - t0:.1f} s; cache {cache.cache_dir()}")
        if not args.files:
            return EXIT_OK
    if not args.files:
        print("memcgsim validate: name scenario files (or --setup)", file=sys.stderr)
        return EXIT_INVALID
    from .validate.render import render_json, render_markdown, render_text
    from .validate.run import load_record, replay, validate, write_record

    scenarios = []
    try:
        for path in args.files:
            scenarios.append(load_scenario(path))
    except ScenarioError as e:
        print(f"{e}", file=sys.stderr)
        return EXIT_INVALID
    kernel = args.kernel[-1] if args.kernel else None
    if args.runs < 1:
        print(f"memcgsim validate: --runs {args.runs}: give at least 1", file=sys.stderr)
        return EXIT_INVALID
    if args.record and os.path.exists(args.record):
        print(f"memcgsim validate: --record {args.record}: the file exists; name a new one",
              file=sys.stderr)
        return EXIT_INVALID
    try:
        if args.replay:
            recorded = {}
            for path in args.replay:
                recorded.update(load_record(path))
            v = replay(scenarios, recorded, kernel=kernel, source=", ".join(args.replay))
        else:
            v = validate(scenarios, kernel=kernel, log=log, runs=args.runs)
            if args.record:
                write_record(v, args.record)
    except InvalidRequest as e:
        print(f"memcgsim validate: {e}", file=sys.stderr)
        return EXIT_INVALID
    except Unsupported as e:
        print(f"memcgsim validate: {e}", file=sys.stderr)
        return EXIT_INVALID
    except cache.SetupError as e:
        print(f"memcgsim validate: {e}", file=sys.stderr)
        return EXIT_SETUP
    if args.json:
        print(json.dumps(render_json(v), indent=2))
    elif args.markdown:
        print(render_markdown(v), end="")
    else:
        print(render_text(v, "all" if args.all else "brief" if args.brief else "default"),
              end="")
    return v.exit_status


def cmd_explore(args) -> int:
    import time

    from .explore import explore, explore_random
    from .races import INJECTIONS, PATHS, RACE_SETS

    if args.list:
        for name, r in RACE_SETS.items():
            print(f"{name:<34} {r.doc}")
        for bug, (why, race) in INJECTIONS.items():
            print(f"--inject {bug:<25} {why} (race set {race})")
        for name, spec in PATHS.items():
            print(f"path {name:<29} {spec.doc}")
        return EXIT_OK
    races = {}
    for name in args.races:
        if name.endswith((".yaml", ".yml")):
            from .racefile import RaceFileError, load_race_file

            try:
                race = load_race_file(name)
            except RaceFileError as e:
                print(f"memcgsim: {e}", file=sys.stderr)
                return EXIT_INVALID
            races[race.name] = race
        elif name in RACE_SETS:
            races[name] = RACE_SETS[name]
        else:
            races[name] = None
    unknown = [n for n, r in races.items() if r is None] + [
        b for b in args.inject if b not in INJECTIONS]
    if unknown:
        print(f"memcgsim: unknown race set or bug: {', '.join(unknown)} (see --list)",
              file=sys.stderr)
        return EXIT_INVALID
    if not races:
        names = [INJECTIONS[b][1] for b in args.inject] if args.inject else list(RACE_SETS)
        races = {n: RACE_SETS[n] for n in names}
    status = EXIT_OK
    for name, race in races.items():
        t0 = time.perf_counter()
        if args.random:
            out = explore_random(race, args.random, args.seed, inject=args.inject)
        else:
            out = explore(race, inject=args.inject, max_states=args.max_states,
                          por=not args.no_por)
        dt = time.perf_counter() - t0
        rate = out.states / dt if dt else 0.0
        print(f"{name}: {out.states} states, {out.schedules} complete schedules, "
              f"{out.transitions} steps, {dt:.3f} s ({rate:,.0f} states/s)"
              + (" (stopped at --max-states)" if out.truncated else ""))
        labels = [label for label, _ in race.paths]
        for i, label in enumerate(labels):
            seen = sorted({r[i] for r in out.results}, key=repr)
            if seen:
                print(f"  {label} returns {' or '.join(map(repr, seen))}")
        if out.problem:
            status = EXIT_ERROR
            print(f"  violation: {out.problem}")
            for line in out.counterexample:
                print(f"  {line}")
            if out.problem.pages:
                print("  pages:")
                for dump in out.problem.pages:
                    print("    " + dump.replace("\n", "\n    "))
    return status


def cmd_conformance(args) -> int:
    from .conformance import render_table, run_suite

    results = run_suite(args.dir)
    if not results:
        print(f"memcgsim: no case files (*.yaml) in {args.dir}", file=sys.stderr)
        return EXIT_INVALID
    print(render_table(results), end="")
    return EXIT_OK if all(r.passed for r in results) else EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # `memcgsim demo | head`: the reader went away; keep the exit-time flush quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        from .errors import MemcgsimError

        if not isinstance(exc, MemcgsimError):
            raise
        print(f"memcgsim: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


__all__ = ["main", "build_parser"]
