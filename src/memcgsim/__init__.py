"""memcgsim: an executable model of Linux memory-cgroup page accounting.

The public surface:

=====================  ===========================================================
``Machine``            build a machine, cgroups, tasks and files; run the kernel paths
``Kernel``             the model's state, for code that drives kernel paths directly
``check``              the invariant checker: a list of ``Violation``
``assert_invariants``  the same, raising ``InvariantViolation``
``PROFILES``           the kernel profiles ("3.17")
errors                 ``MemcgsimError``, ``InvalidRequest``, ``ModelBug``,
                       ``VMBugOnPage``, ``Deadlock``, ``Errno``
=====================  ===========================================================
"""

from .check import InvariantViolation, Violation, assert_invariants, check
from .errors import Deadlock, Errno, InvalidRequest, MemcgsimError, ModelBug, VMBugOnPage
from .kernel import PAGE_SIZE, Kernel
from .machine import Machine
from .profile import PROFILES, KernelProfile

__all__ = [
    "Machine", "Kernel", "PAGE_SIZE", "check", "assert_invariants", "Violation",
    "InvariantViolation", "PROFILES", "KernelProfile", "MemcgsimError", "InvalidRequest",
    "ModelBug", "VMBugOnPage", "Deadlock", "Errno",
]
