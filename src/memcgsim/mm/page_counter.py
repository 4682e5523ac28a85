"""mm/page_counter.c (3.19 on): the modern hierarchical page counter, in pages.

It replaced res_counter in 3.19 and is what every later memcg builds on (memory, swap, memsw,
kmem, tcpmem), as well as hugetlb and dmem. A counter knows nothing about reclaim or LRUs: it
counts pages up a parent chain, refuses charges over `max`, and keeps the bookkeeping the reclaim
code needs for memory.min/memory.low (protected usage pushed to the parent, effective protection
computed top-down).

Errors follow the kernel: try_charge returns the level that hit its max (the caller reclaims
there), set_max returns -EBUSY, an underflow is clamped to 0 and remembered in `underflows` (the
kernel WARNs once and goes on). Parsing "max" or "512M" is the cgroupfs layer's job, not this one.

The kernel does all this with lockless atomics and tolerates small races (failcnt, watermark); the
model runs each verb as one atomic step, which is one of the orders the kernel allows.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import Errno, InvalidRequest

PAGE_SIZE = 4096
#: LONG_MAX of a 64-bit kernel; usage is an atomic_long_t
LONG_MAX = (1 << 63) - 1
#: PAGE_COUNTER_MAX: "no limit" (what memory.max reads as "max"), in pages
PAGE_COUNTER_MAX = LONG_MAX // PAGE_SIZE


class PageCounter:
    """One struct page_counter, with its parent pointer and the object embedding it."""

    __slots__ = (
        # hot: written on every charge
        "usage", "failcnt",
        # protection bookkeeping: effective values, own and children's protected usage
        "emin", "elow", "min_usage", "low_usage", "children_min_usage", "children_low_usage",
        # peaks: global (memory.peak) and the one a memory.peak write restarts (6.12)
        "watermark", "local_watermark",
        # configuration, read-mostly
        "min", "low", "high", "max", "protection_support", "parent",
        # model-only
        "name", "owner", "underflows",
    )

    def __init__(self, name: str, parent: PageCounter | None = None, owner=None, *,
                 protection_support: bool = False):
        self.name = name
        #: the structure embedding this counter (container_of)
        self.owner = owner
        self.parent = parent
        #: whether charges keep min_usage/low_usage current: the memory counter does, swap,
        #: memsw, kmem and tcpmem do not (nobody sets min/low on them)
        self.protection_support = protection_support
        self.usage = 0
        self.max = PAGE_COUNTER_MAX
        # page_counter_init leaves high alone; memcg sets it to "max" right after, and nothing
        # else reads it, so the model starts there
        self.high = PAGE_COUNTER_MAX
        self.min = self.low = 0
        self.emin = self.elow = 0
        self.min_usage = self.low_usage = 0
        self.children_min_usage = self.children_low_usage = 0
        self.watermark = self.local_watermark = 0
        self.failcnt = 0
        #: (pages asked, usage found) of each underflowing cancel: a double uncharge somewhere
        self.underflows: list[tuple[int, int]] = []

    def __repr__(self) -> str:
        return f"<page_counter {self.name} usage={self.usage} max={self.max}>"

    def chain(self) -> Iterator[PageCounter]:
        """This counter, then each ancestor up to the root."""
        c: PageCounter | None = self
        while c is not None:
            yield c
            c = c.parent

    def propagate_protected_usage(self) -> None:
        """Recompute how much of this counter's usage its min and low cover, and move the parent's
        children_min_usage/children_low_usage by the difference, so the parent always knows how
        much protection its children claim *and use* without walking them."""
        parent = self.parent
        if parent is None:
            return      # nobody above competes for the root's memory
        min_usage = min(self.usage, self.min)
        parent.children_min_usage += min_usage - self.min_usage
        self.min_usage = min_usage
        low_usage = min(self.usage, self.low)
        parent.children_low_usage += low_usage - self.low_usage
        self.low_usage = low_usage

    def _raise_watermarks(self) -> None:
        # a reset sets both and a memory.peak write only lowers local_watermark, so
        # local_watermark <= watermark always holds and one max() each keeps it so
        self.local_watermark = max(self.local_watermark, self.usage)
        self.watermark = max(self.watermark, self.usage)

    def charge(self, nr: int) -> None:
        """page_counter_charge: add `nr` at every level, ignoring max. For charges that must not
        fail (__GFP_NOFAIL, an OOM victim on its way out); usage may end above max."""
        protect = self.protection_support
        for c in self.chain():
            c.usage += nr
            if protect:
                c.propagate_protected_usage()
            c._raise_watermarks()

    def try_charge(self, nr: int) -> PageCounter | None:
        """page_counter_try_charge: None on success, else the lowest level whose usage would go
        over its max; that level's failcnt rises and nothing stays charged anywhere.

        Each level is added to first and checked after (the kernel's speculative add, no CAS),
        so the levels already passed have their watermarks raised even when a higher level then
        refuses: memory.peak can show a charge that was undone."""
        protect = self.protection_support
        for c in self.chain():
            c.usage += nr
            if c.usage > c.max:
                c.usage -= nr
                c.failcnt += 1
                for d in self.chain():
                    if d is c:
                        break
                    d.cancel(nr)
                return c
            if protect:
                c.propagate_protected_usage()
            c._raise_watermarks()
        return None

    def cancel(self, nr: int) -> None:
        """page_counter_cancel: take `nr` out of this level only (try_charge's undo, and the
        per-level step of uncharge). More uncharged than charged is clamped to 0 and recorded."""
        if self.usage < nr:
            self.underflows.append((nr, self.usage))
            self.usage = 0
        else:
            self.usage -= nr
        if self.protection_support:
            self.propagate_protected_usage()

    def uncharge(self, nr: int) -> None:
        """page_counter_uncharge: cancel `nr` at every level up to the root."""
        for c in self.chain():
            c.cancel(nr)

    def set_max(self, nr: int) -> int:
        """page_counter_set_max: 0, or -EBUSY if usage is already above `nr`. Refusing is the
        counter's part; reclaiming down to the new limit and retrying is the caller's."""
        if self.usage > nr:
            return -Errno.EBUSY
        self.max = nr
        return 0

    def set_min(self, nr: int) -> None:
        """page_counter_set_min: memory.min. The parent's children_min_usage follows at once, so
        the next reclaim sees the new claim."""
        self.min = nr
        self._propagate_up()

    def set_low(self, nr: int) -> None:
        """page_counter_set_low: memory.low, propagated like set_min."""
        self.low = nr
        self._propagate_up()

    def _propagate_up(self) -> None:
        # the kernel refreshes every level up the chain whether or not the counter tracks
        # protection; with consistent state only this level's contribution actually changes
        for c in self.chain():
            c.propagate_protected_usage()

    def set_high(self, nr: int) -> None:
        """page_counter_set_high: memory.high is only read by memcg's throttling, never here."""
        self.high = nr

    # The res_counter vocabulary memcg code of both eras reads (3.17's limit, max_usage and
    # margin are page_counter's max, watermark and mem_cgroup_margin's arithmetic).
    @property
    def limit(self) -> int:
        return self.max

    @property
    def max_usage(self) -> int:
        return self.watermark

    def margin(self) -> int:
        return max(0, self.max - self.usage)

    def fits(self, nr: int) -> bool:
        """Whether try_charge(nr) would succeed, touching nothing (failcnt included)."""
        return all(c.usage + nr <= c.max for c in self.chain())

    set_limit = set_max

    def reset_watermark(self) -> None:
        """page_counter_reset_watermark: both peaks restart from the current usage (v1
        max_usage_in_bytes write)."""
        self.local_watermark = self.usage
        self.watermark = self.usage


def _effective_protection(usage: int, parent_usage: int, setting: int, parent_effective: int,
                         siblings_protected: int, recursive_protection: bool) -> int:
    """How much of a counter's usage its min (or low) `setting` protects, given the parent's
    effective protection and what all the siblings claim and use (`siblings_protected`, the
    parent's children_*_usage, this counter included). The kernel's rules:

    1. Children of the reclaim root get their configured value (calculate_protection does it).
    2. Below that, protection is capped by the parent's effective protection.
    3. If the siblings together claim and use more than the parent has, the parent's share is
       split in proportion to each one's protected usage: work-conserving, since a claim that is
       not used gives nothing away.
    4. If they claim less, each keeps min(usage, setting): a sibling's unused claim is not handed
       to the others.
    5. With recursive protection (memory_recursiveprot) the unclaimed rest of the parent's
       protection floats down in proportion to each child's unprotected usage, so a protected
       subtree stays protected from its neighbours without configuring every leaf.
    """
    protected = min(usage, setting)
    if siblings_protected > parent_effective:
        return protected * parent_effective // siblings_protected       # rules 2 and 3
    if not recursive_protection:
        return protected                                                # rule 4
    unprotected = usage - protected
    if unprotected == 0:
        return protected            # nothing left for the floating rest to cover
    floating = parent_effective - siblings_protected                    # rule 5
    # the parent's usage holds this counter's unprotected pages on top of all the siblings'
    # protected ones, so the divisor is > 0. The kernel multiplies in unsigned long (it can
    # wrap when the parent's protection is "max"); the model's product is exact.
    return protected + floating * unprotected // (parent_usage - siblings_protected)


def calculate_protection(root: PageCounter, counter: PageCounter,
                         recursive_protection: bool) -> None:
    """page_counter_calculate_protection: fill `counter`'s emin and elow for a reclaim rooted at
    `root`. Only meaningful top-down (the parent's emin/elow must already be for this `root`).

    The reclaim root's own values are left as they are, and the caller must treat it as
    unprotected (reclaim never protects a cgroup from itself: memory.reclaim on C ignores C's
    stale emin). A counter with no usage is skipped too: it has nothing to protect."""
    if counter is root or counter.usage == 0:
        return
    parent = counter.parent
    if parent is None:
        raise InvalidRequest(f"calculate_protection: {root.name} is not above {counter.name}")
    if parent is root:                                                  # rule 1
        counter.emin = counter.min
        counter.elow = counter.low
        return
    counter.emin = _effective_protection(counter.usage, parent.usage, counter.min, parent.emin,
                                         parent.children_min_usage, recursive_protection)
    counter.elow = _effective_protection(counter.usage, parent.usage, counter.low, parent.elow,
                                         parent.children_low_usage, recursive_protection)
