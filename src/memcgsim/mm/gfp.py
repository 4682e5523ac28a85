"""The gfp bits the charge path looks at."""

__GFP_WAIT = 1 << 0       # may sleep, so may reclaim
__GFP_NORETRY = 1 << 1    # give up after one round of reclaim; never OOM
__GFP_NOFAIL = 1 << 2     # must succeed (bypass to root in 3.17)
__GFP_HIGHMEM = 1 << 3
__GFP_HIGH = 1 << 4        # may use reserves: a 6.x memcg charge is forced rather than failed
__GFP_RETRY_MAYFAIL = 1 << 5

GFP_NOWAIT = 0
GFP_ATOMIC = 0
GFP_KERNEL = __GFP_WAIT
GFP_HIGHUSER_MOVABLE = __GFP_WAIT | __GFP_HIGHMEM
GFP_TRANSHUGE = GFP_HIGHUSER_MOVABLE | __GFP_NORETRY
