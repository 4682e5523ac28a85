"""Kernel profiles: every difference between the modelled kernel versions lives in this table.

Code elsewhere reads `kernel.profile.<field>`; it never compares version strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelProfile:
    name: str
    #: cgroup interfaces the version offers ("v1", "v2")
    cgroup_versions: tuple[str, ...]
    #: CHARGE_BATCH / MEMCG_CHARGE_BATCH: pages a per-CPU stock pre-charges at once
    charge_batch: int
    #: MEM_CGROUP_RECLAIM_RETRIES / MAX_RECLAIM_RETRIES
    reclaim_retries: int
    #: charges of a task that is dying or an OOM victim go to root (3.17 "bypass")
    bypass_to_root: bool
    #: the 2014 split charge API: try_charge, then commit (with lrucare) or cancel
    try_commit_cancel: bool
    #: swap cluster read-ahead: 1 << page_cluster pages
    page_cluster: int
    #: a page charge below this order that made reclaim progress is retried
    costly_order_pages: int


PROFILES: dict[str, KernelProfile] = {
    "3.17": KernelProfile(
        name="3.17",
        cgroup_versions=("v1",),
        charge_batch=32,
        reclaim_retries=5,
        bypass_to_root=True,
        try_commit_cancel=True,
        page_cluster=3,
        costly_order_pages=8,
    ),
}


def get_profile(name: str) -> KernelProfile:
    from .errors import InvalidRequest

    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise InvalidRequest(f"unknown kernel profile {name!r} (known: {known})") from None
