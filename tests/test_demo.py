"""The demo (`memcgsim demo`): exit status, and the values it prints at each step.

The output is parsed back into numbers and checked against what the 3.17 lifecycle says must
happen to them, so a model change that moves a counter shows up here.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from memcgsim import PAGE_SIZE, PROFILES, cli, demo
from memcgsim.mm.memcontrol import MEM_CGROUP_STAT_RSS

STEP_RE = re.compile(r"^\s*(\d+)\. (.+)$")
COUNTER_RE = re.compile(r"^    (memory|memsw)\s+(\d+) pages?\s+(\d+) bytes\s+\((.+)\)$")
STOCK_RE = re.compile(r"^    stock\s+(\d+) pages?")
STAT_RE = re.compile(r"(\w+) (\d+) -> (\d+)")


@dataclass
class Block:
    n: int
    title: str
    lines: list[str] = field(default_factory=list)
    memory: int = -1
    memsw: int = -1
    stock: int = -1
    #: memory.stat keys that changed: key -> (before, after)
    stat: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def charged(self) -> int:
        """Pages charged to pages: usage minus what the per-CPU stock holds."""
        return self.memory - self.stock

    def text(self) -> str:
        return "\n".join(self.lines)


def parse(out: str) -> tuple[list[str], list[Block]]:
    header: list[str] = []
    blocks: list[Block] = []
    for line in out.splitlines():
        m = STEP_RE.match(line)
        if m:
            blocks.append(Block(int(m.group(1)), m.group(2)))
            continue
        if not blocks:
            header.append(line)
            continue
        b = blocks[-1]
        b.lines.append(line)
        m = COUNTER_RE.match(line)
        if m:
            pages, nbytes = int(m.group(2)), int(m.group(3))
            assert nbytes == pages * PAGE_SIZE, line
            setattr(b, m.group(1), pages)
        m = STOCK_RE.match(line)
        if m:
            b.stock = int(m.group(1))
        if line.startswith("    stat "):
            for key, before, after in STAT_RE.findall(line):
                b.stat[key] = (int(before), int(after))
    return header, blocks


@pytest.fixture(scope="module")
def demo_run():
    """Run `memcgsim demo` once through cli.main; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["demo"])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def blocks(demo_run):
    rc, out, _ = demo_run
    assert rc == 0
    header, blocks = parse(out)
    by_title = {b.title: b for b in blocks}
    assert len(by_title) == len(blocks) == len(demo.STEPS)
    return blocks


def step(blocks, title_start: str) -> tuple[Block, Block | None]:
    """The block whose title starts with title_start, and the one before it."""
    for i, b in enumerate(blocks):
        if b.title.startswith(title_start):
            return b, blocks[i - 1] if i else None
    raise AssertionError(f"no step {title_start!r} in {[b.title for b in blocks]}")


def test_exit_zero_and_every_step_checked(demo_run, blocks):
    rc, out, err = demo_run
    assert rc == 0
    assert err == ""
    assert [b.n for b in blocks] == list(range(1, len(demo.STEPS) + 1))
    for b in blocks:
        assert "    check   ok" in b.lines, b.title
        assert min(b.memory, b.memsw, b.stock) >= 0, b.title
    assert out.rstrip().endswith(f"done: {len(demo.STEPS)} steps, every invariant held after each")


def test_header_names_the_machine(demo_run):
    header, _ = parse(demo_run[1])
    text = "\n".join(header)
    assert "4096 pages (16 MiB) on 2 nodes, 256 pages of swap, 1 CPU" in text
    assert "kernel   3.17, cgroup v1, swap accounting on" in text


def test_anonymous_fault_charges_a_batch_and_commits_the_page(blocks):
    b, _ = step(blocks, "Anonymous fault")
    batch = PROFILES["3.17"].charge_batch
    assert b.memory == b.memsw == batch          # try_charge charged a whole batch ...
    assert b.stock == batch - 1                  # ... and stocked what the page did not need
    assert b.charged == 1
    assert b.stat["rss"] == (0, PAGE_SIZE)
    assert b.stat["pgpgin"] == (0, 1)
    assert b.stat["pgfault"] == (0, 1)
    assert "page_cgroup: flags USED|MEM|MEMSW mem_cgroup /a" in b.text()
    assert "lru: active_anon of lruvec /a node 0" in b.text()


def test_swapout_hands_memsw_to_the_swap_entry(blocks):
    b, prev = step(blocks, "Reclaim with swapout")
    assert b.memory == prev.memory - 1           # memory dropped by exactly the page
    assert b.memsw == prev.memsw                 # memsw did not change: the slot holds it
    assert b.stock == prev.stock
    assert b.charged == 0
    assert b.stat["swap"] == (0, PAGE_SIZE)
    assert b.stat["rss"] == (PAGE_SIZE, 0)
    assert b.stat["pgpgout"] == (0, 1)
    assert "page_cgroup: flags 0 mem_cgroup /a (stale)" in b.text()
    assert "swap_map count 1, swap_cgroup record /a" in b.text()


def test_swapin_commit_drops_the_slots_memsw(blocks):
    b, prev = step(blocks, "Swapin fault")
    assert b.stat["swap"] == (PAGE_SIZE, 0)     # the swap stat is back to 0
    assert b.memsw == prev.memsw - 1             # the slot's duplicate memsw charge is gone
    assert b.memory == prev.memory               # the charge came out of the stock ...
    assert b.stock == prev.stock - 1
    assert b.charged == 1                        # ... and now sits on the page
    assert b.stat["rss"] == (0, PAGE_SIZE)
    assert b.stat["pgmajfault"] == (0, 1)
    assert "page_cgroup: flags USED|MEM|MEMSW mem_cgroup /a" in b.text()
    assert "flags: lru|swapcache|swapbacked|anon" in b.text()
    assert "+ SWAP_HAS_CACHE" in b.text() and "swap_cgroup record none" in b.text()


def test_migration_moves_the_charge_without_counter_traffic(blocks):
    b, prev = step(blocks, "NUMA migration")
    assert (b.memory, b.memsw, b.stock) == (prev.memory, prev.memsw, prev.stock)
    assert set(b.stat) == {"pgpgin", "pgpgout"}
    assert b.stat["pgpgin"][1] == b.stat["pgpgin"][0] + 1
    assert b.stat["pgpgout"][1] == b.stat["pgpgout"][0] + 1
    new, old = b.text().split("\n    old ")
    assert "node:1" in new and "page_cgroup: flags USED|MEM|MEMSW mem_cgroup /a" in new
    assert "node:0" in old and "page_cgroup: flags 0 " in old


def test_page_cache_write_is_charged_to_the_writer(blocks):
    b, prev = step(blocks, "Page-cache write")
    assert b.stat["cache"] == (0, PAGE_SIZE)
    assert b.charged == prev.charged + 1
    assert "lru: inactive_file of lruvec /a node 0" in b.text()
    assert "page_cgroup: flags USED|MEM|MEMSW mem_cgroup /a" in b.text()


def test_splice_moves_the_charge_to_the_new_page(blocks):
    b, prev = step(blocks, "replace_page_cache_page")
    assert (b.memory, b.memsw, b.stock) == (prev.memory, prev.memsw, prev.stock)
    assert "cache" not in b.stat
    assert b.stat["pgpgin"][1] - b.stat["pgpgin"][0] == 1
    new, old = b.text().split("\n    old ")
    assert "page_cgroup: flags USED|MEM|MEMSW mem_cgroup /a" in new
    assert "page_cgroup: flags 0 " in old and "flags: buddy" in old


def test_mapping_a_cached_page_counts_mapped_file_only(blocks):
    b, prev = step(blocks, "mmap of the file")
    assert (b.memory, b.memsw) == (prev.memory, prev.memsw)
    assert b.stat["mapped_file"] == (0, PAGE_SIZE)


def test_truncation_uncharges_at_the_final_put(blocks):
    b, prev = step(blocks, "Truncation")
    assert b.memory == prev.memory - 1
    assert b.memsw == prev.memsw - 1
    assert b.stat["cache"] == (PAGE_SIZE, 0)
    assert b.stat["mapped_file"] == (PAGE_SIZE, 0)
    assert "page_cgroup: flags 0 mem_cgroup /a (stale)" in b.text()


def test_munmap_leaves_only_the_stock(blocks):
    b, prev = step(blocks, "munmap")
    assert b.memory == prev.memory - 1 and b.memsw == prev.memsw - 1
    assert b.stat["rss"] == (PAGE_SIZE, 0)
    assert b.memory == b.memsw == b.stock        # nothing charged but the per-CPU stock
    assert blocks[-1] is b


def test_explanations_state_no_numbers():
    for s in demo.STEPS:
        assert not re.search(r"\d", s.why), s.title


def test_no_arguments_runs_the_demo(demo_run, capsys):
    assert cli.main([]) == 0
    assert capsys.readouterr().out == demo_run[1]


def test_a_violation_exits_3_with_the_violations(monkeypatch, capsys):
    def corrupt(d: demo.Demo) -> demo.Shown:
        d.m.memcg(demo.CGROUP).stat[MEM_CGROUP_STAT_RSS] += 1
        return demo.Shown()

    bad = demo.Step("Corrupt rss", "none", "The statistic is bumped by hand.", corrupt)
    monkeypatch.setattr(demo, "STEPS", [demo.STEPS[0], bad, demo.STEPS[1]])
    assert cli.main(["demo"]) == 3
    out, err = capsys.readouterr()
    assert "\n 2. Corrupt rss\n" in out and "\n 3. " not in out
    assert "invariants violated after step 2. Corrupt rss" in err
    assert "[stats] /a rss" in err


def test_a_step_that_goes_differently_exits_1(monkeypatch, capsys):
    def swapout_mlocked(d: demo.Demo) -> demo.Shown:
        demo.anon_fault(d)
        d.m.mlock(d.task, d.anon_vma)            # unevictable: reclaim keeps the page
        return demo.swapout(d)

    monkeypatch.setattr(demo, "STEPS", [demo.Step("Swap out", "x", "y", swapout_mlocked)])
    with pytest.raises(demo.DemoError, match="reclaim did not free"):
        demo.run()
    assert cli.main(["demo"]) == 1
    assert "memcgsim: DemoError: demo step did not happen" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["bogus"], ["demo", "--frobnicate"], ["--nope"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "usage: memcgsim" in capsys.readouterr().err


def test_python_dash_m_runs_the_demo(demo_run):
    proc = subprocess.run([sys.executable, "-m", "memcgsim", "demo"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == demo_run[1]           # the run is deterministic
