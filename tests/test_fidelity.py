"""The model against the real kernel's recorded runs (tests/validate/records: three boots of
Debian's 6.1 and 6.12 per scenario group), under validate's strict rules, without QEMU: every
example, conformance and validation file the guest can run, on every kernel it runs on.

Every value that fails its rule must be a difference src/memcgsim/validate/known.py explains,
and every entry there must still explain one: a model change that breaks a matching value, or
fixes a known difference, shows here. docs/fidelity.md's tables must be what the records and
the model give now."""

from pathlib import Path

import pytest

from memcgsim.validate import fidelity
from memcgsim.validate.known import KNOWN, explain

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def replayed():
    return fidelity.validations(ROOT)


def test_every_runnable_file_is_recorded_on_every_kernel(replayed):
    """replay() raises for a file whose steps or machine changed since the recording; and no
    file the guest can run is left out."""
    for series, (v, skipped) in replayed.items():
        files = {r.scenario.file for r in v.results}
        assert len(files) + len(skipped) == len([
            f for f in fidelity.scenario_files(ROOT)
            if series == "6.1" or "cgroup: v1" not in f.read_text()]), series
        assert [f for f, _ in skipped] == ["examples/migration-6.1-vs-6.12.yaml"]
        assert all(len(r.guests) == 3 and r.ended for r in v.results)


def test_every_failure_is_a_known_difference_and_every_known_one_is_seen(replayed):
    unexplained, used = [], set()
    for series, (v, _) in replayed.items():
        for r in v.results:
            for row in r.comparison.mismatches:
                k = explain(r, row)
                if k is None:
                    unexplained.append((series, r.scenario.file, row.step, row.cgroup,
                                        row.key, str(row.kernel), row.model))
                else:
                    used.add(KNOWN.index(k))
    assert unexplained == []
    assert [i for i in set(range(len(KNOWN))) - used if not KNOWN[i].sometimes] == []


def test_how_many_files_match(replayed):
    """The strict comparison's score, as docs/fidelity.md reports it: files matching on every
    compared value, and failing values of all compared."""
    got = {series: fidelity.summary(v) for series, (v, _) in replayed.items()}
    assert got == {"6.12": (5, 21, 136, 3081), "6.1": (58, 70, 83, 4803)}


def test_values_the_model_now_matches(replayed):
    """The fixes the strict comparison led to, on the real kernel's values."""
    def rows(series, name, key, cgroup):
        v, _ = replayed[series]
        r = next(r for r in v.results if r.scenario.file.endswith(name))
        return [row for row in r.comparison.rows if row.key == key and row.cgroup == cgroup]

    # swap slot caches: 64 slots of a tmpfs file read back from swap stay charged (both)
    for series in ("6.1", "6.12"):
        last = rows(series, "tmpfs-swapin.yaml", "memory.swap.current", "/job")[-1]
        assert (last.kernel, last.model, last.ok) == (262144, 262144, True)
    # munmap of swapped anon: 6.1 keeps the last 1-64 in the slot cache; 6.12 frees the runs
    last = rows("6.12", "v2-swap-under-max.yaml", "memory.swap.current", "/web")[-1]
    assert (last.kernel, last.model) == (0, 0)
    last = rows("6.1", "v2-swap-under-max.yaml", "memory.swap.current", "/web")[-1]
    assert str(last.kernel) == "192512..196608" and last.ok
    # the retries after the charging task killed itself
    for series in ("6.1", "6.12"):
        ev = rows(series, "v2-oom-kill.yaml", "memory.events.max", "/web")[-1]
        assert (ev.kernel, ev.model) == (35, 35)
    fail = rows("6.1", "oom-with-low-rss.yaml", "memory.failcnt", "/app")[-1]
    assert (fail.kernel, fail.model) == (36, 36)


def test_the_fidelity_document_is_up_to_date():
    assert fidelity.main(["--check", "--root", str(ROOT)]) == 0, (
        "docs/fidelity.md: run python -m memcgsim.validate.fidelity")
