"""Operations on a Machine, each defined once (memcgsim.ops.op describes an `Op`).

`OPS` maps a step's name to its Op. The scenario loader checks a step with `op.load`, the
runner performs it with `op.apply`, the real-kernel guest translates it with `op.guest`, the
limits count it with `op.pages`; the race files' setup steps are ops too (memcgsim.ops.race).
Adding a step is adding one Op here, and its tests.
"""

from __future__ import annotations

from . import cgroups, files, memory, race, tasks
from .op import KINDS, Arg, Built, Drive, Estimate, Op, errno_name

#: every scenario step, by name
OPS: dict[str, Op] = {op.name: op for group in (tasks, memory, files, cgroups)
                      for op in group.OPS}
#: the ops only a race file's setup uses, by name
RACE_OPS: dict[str, Op] = {op.name: op for op in race.OPS}

__all__ = ["OPS", "RACE_OPS", "KINDS", "Arg", "Built", "Drive", "Estimate", "Op", "errno_name"]
