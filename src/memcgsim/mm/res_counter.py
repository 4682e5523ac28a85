"""kernel/res_counter.c as of 3.17: a hierarchical usage counter with a limit.

Counts pages (the kernel counts bytes; the file layer converts). A charge walks from the counter up
its parent chain and stops at the first level that would go over its limit; the levels below are
undone and that level's failcnt rises. Uncharge always succeeds; an underflow is clamped to 0 and
remembered, as the kernel WARNs and goes on.
"""

from __future__ import annotations

from ..errors import Errno

#: RES_COUNTER_MAX (ULLONG_MAX bytes) in whole pages: "no limit"
RES_COUNTER_MAX = ((1 << 64) - 1) // 4096


class ResCounter:
    """One res_counter: usage, limit, max_usage, failcnt and the parent pointer."""

    __slots__ = ("name", "owner", "usage", "max_usage", "limit", "failcnt",
                 "parent", "underflows")

    def __init__(self, name: str, parent: ResCounter | None = None, owner=None):
        self.name = name
        #: the structure embedding this counter (container_of)
        self.owner = owner
        self.parent = parent
        self.usage = 0
        self.max_usage = 0
        self.limit = RES_COUNTER_MAX
        self.failcnt = 0
        #: (amount asked, usage found) of each underflowing uncharge: a double uncharge somewhere
        self.underflows: list[tuple[int, int]] = []

    def __repr__(self) -> str:
        return f"<res_counter {self.name} usage={self.usage} limit={self.limit}>"

    def chain(self):
        c = self
        while c is not None:
            yield c
            c = c.parent

    def charge(self, nr: int) -> ResCounter | None:
        """res_counter_charge: None on success, else the level that hit its limit (not charged)."""
        done = []
        for c in self.chain():
            if c.usage + nr > c.limit:
                c.failcnt += 1
                for d in done:
                    d.usage -= nr
                return c
            c.usage += nr
            if c.usage > c.max_usage:
                c.max_usage = c.usage
            done.append(c)
        return None

    #: the name page_counter gives the same verb, so memcg code can call either counter
    try_charge = charge

    def charge_nofail(self, nr: int) -> ResCounter | None:
        """res_counter_charge_nofail: charge every level; return the first that went over."""
        over = None
        for c in self.chain():
            c.usage += nr
            if c.usage > c.max_usage:
                c.max_usage = c.usage
            if c.usage > c.limit:
                c.failcnt += 1
                over = over or c
        return over

    def uncharge_until(self, top: ResCounter | None, nr: int) -> int:
        """Uncharge every level below `top`; return the remaining usage of this level."""
        c = self
        while c is not None and c is not top:
            if c.usage < nr:
                c.underflows.append((nr, c.usage))
                c.usage = 0
            else:
                c.usage -= nr
            c = c.parent
        return self.usage

    def uncharge(self, nr: int) -> int:
        return self.uncharge_until(None, nr)

    def margin(self) -> int:
        return max(0, self.limit - self.usage)

    def fits(self, nr: int) -> bool:
        """Whether charge(nr) would succeed, without touching anything (failcnt included)."""
        return all(c.usage + nr <= c.limit for c in self.chain())

    def set_limit(self, limit: int) -> int:
        """res_counter_set_limit: 0, or -EBUSY when usage is already above the new limit."""
        if self.usage > limit:
            return -Errno.EBUSY
        self.limit = limit
        return 0
