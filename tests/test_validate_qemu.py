"""memcgsim validate on a real kernel: Debian's 6.12 booted under QEMU runs the validation set
(tests/validate/ and three examples) in one boot, and the model must match it.

Needs the set-up cache (`memcgsim validate --setup`). Without it these tests are skipped, unless
MEMCGSIM_QEMU=1 (as CI sets): then the set-up runs here and a failure fails the tests.
"""

import os
from pathlib import Path

import pytest

from memcgsim.cli import main
from memcgsim.scenario import load_scenario
from memcgsim.validate import cache
from memcgsim.validate.compare import CHARGE_BATCH, PAGE, values
from memcgsim.validate.run import validate

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).parent.parent
SET = [*sorted(str(p) for p in (ROOT / "tests" / "validate").glob("*.yaml")),
       *(str(ROOT / "examples" / f) for f in (
           "v2-swap-under-max.yaml", "v2-oom-kill.yaml", "v2-task-move.yaml"))]


def set_up(series):
    if cache.ready(series) is None:
        if os.environ.get("MEMCGSIM_QEMU") != "1":
            pytest.skip(f"no real-kernel set-up: run `memcgsim validate --setup --kernel "
                        f"{series}` (or set MEMCGSIM_QEMU=1 to set up here)")
        cache.setup([series])   # a failure here fails the tests: CI must not skip silently
    return cache.ready(series)


@pytest.fixture(scope="module")
def kernel_612():
    return set_up("6.12")


@pytest.fixture(scope="module")
def kernel_61():
    return set_up("6.1")


@pytest.fixture(scope="module")
def validation(kernel_612):
    return validate([load_scenario(f) for f in SET], kernel="6.12")


def by_file(v, name):
    return next(r for r in v.results if r.scenario.file.endswith(name))


def test_one_boot_records_the_pinned_settings(validation):
    assert len(validation.boots) == 1
    b = validation.boots[0]
    assert b["release"].startswith("6.12.") and b["smp"] == 1 and b["memory"] == "256M"
    s = b["settings"]
    assert (s["swappiness"], s["dirty_ratio"], s["dirty_background_ratio"]) == ("60", "20", "10")
    swap = by_file(validation, "v2-swap-under-max.yaml")
    assert swap.boot["thp"] == "never" and swap.boot["swap"].startswith("zram 268435456")
    assert by_file(validation, "anon.yaml").boot["swap"] == "none"


@pytest.mark.parametrize("name", ["anon.yaml", "tmpfs.yaml", "v2-swap-under-max.yaml",
                                  "v2-oom-kill.yaml", "v2-task-move.yaml", "fork.yaml",
                                  "memory-high.yaml", "thp.yaml", "mappings.yaml",
                                  "tmpfs-swapin.yaml"])
def test_model_matches(validation, name):
    r = by_file(validation, name)
    assert r.guest.ended and not r.model_failure
    assert [(m.step, m.cgroup, m.key, m.kernel, m.model) for m in r.comparison.mismatches] == []


def test_exact_values_seen(validation):
    thp = {(r.step, r.key): r for r in by_file(validation, "thp.yaml").comparison.rows}
    assert thp[(2, "memory.stat.anon_thp")].kernel == 52428800 and thp[
        (2, "memory.stat.anon_thp")].ok
    kinds = {(r.step, r.key): r for r in by_file(validation, "mappings.yaml").comparison.rows}
    assert kinds[(6, "memory.stat.unevictable")].kernel == 12 << 20
    assert kinds[(6, "memory.stat.shmem")].kernel == 8 << 20
    rows = {(r.step, r.cgroup, r.key): r for r in by_file(validation, "anon.yaml").comparison.rows}
    assert rows[(2, "/anon", "memory.stat.anon")].kernel == 52428800
    assert rows[(2, "/anon", "memory.stat.anon")].ok is True
    oom = {(r.step, r.key): r for r in by_file(validation, "v2-oom-kill.yaml").comparison.rows}
    assert oom[(2, "task A")].kernel == "killed"
    assert oom[(3, "memory.events.oom_kill")].kernel == 1
    assert oom[(3, "memory.peak")].kernel == 31457280


def test_page_cache_differs_by_the_file_systems_slab_only(validation):
    """ext4 charges slab (buffer heads, xarray nodes, inodes) to the writer; the model has
    none. Everything else matches; memory.current and memory.peak differ by that kernel memory,
    within one charge batch."""
    r = by_file(validation, "page-cache.yaml")
    assert r.guest.ended and not r.model_failure
    bad = r.comparison.mismatches
    assert bad and {(m.cgroup, m.key) for m in bad} <= {
        ("/writer", "memory.current"), ("/writer", "memory.peak")}
    for m in bad:
        if m.key != "memory.current":
            continue
        kv = values(r.guest.files[m.step]["/s" + str(_index(validation, r)) + "/writer"])
        extra_kernel = kv["memory.stat.kernel"] - 28672
        assert abs((m.kernel - m.model) - extra_kernel) <= CHARGE_BATCH * PAGE
        assert kv["memory.stat.slab"] > 512 << 10


def _index(v, r):
    return v.results.index(r) + 1


def test_cli_exit_status(kernel_612, capsys):
    assert main(["validate", "--kernel", "6.12", str(ROOT / "tests/validate/tmpfs.yaml")]) == 0
    assert "matches" in capsys.readouterr().out
    assert main(["validate", str(ROOT / "tests/validate/page-cache.yaml")]) == 1
    assert "MISMATCH" in capsys.readouterr().out


V1_SET = [*sorted(str(p) for p in (ROOT / "tests" / "conformance").glob("A1-*.yaml")),
          *(str(ROOT / "examples" / f) for f in (
              "v1-swap-under-limit.yaml", "tmpfs-outlives-writer.yaml", "move-charge.yaml",
              "oom-with-low-rss.yaml"))]


def test_cgroup_v1_on_61_matches(kernel_61):
    """The v1 interface exists only on 6.1: the LTP cases and the v1 examples without page
    cache on ext4 (whose slab v1's usage includes) match on every compared value."""
    v = validate([load_scenario(f) for f in V1_SET], kernel="6.1")
    assert len(v.boots) == 1 and v.boots[0]["release"].startswith("6.1.")
    assert v.boots[0]["cgroup"] == "v1"
    bad = [(r.scenario.file, m.step, m.key, m.kernel, m.model)
           for r in v.results for m in r.comparison.mismatches]
    assert bad == []
    assert all(r.guest.ended and not r.model_failure for r in v.results)
    swap = by_file(v, "v1-swap-under-limit.yaml")
    rows = {(r.step, r.key): r for r in swap.comparison.rows}
    assert rows[(2, "memory.stat.swap")].kernel > 20 << 20
