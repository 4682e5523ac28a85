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

import importlib

_EXPORTS = {
    "Machine": ".machine", "Kernel": ".kernel", "PAGE_SIZE": ".kernel", "check": ".checker",
    "assert_invariants": ".checker", "Violation": ".checker", "InvariantViolation": ".checker",
    "PROFILES": ".profile", "KernelProfile": ".profile", "MemcgsimError": ".errors",
    "InvalidRequest": ".errors", "ModelBug": ".errors", "VMBugOnPage": ".errors",
    "Deadlock": ".errors", "Errno": ".errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import on first use, so that `memcgsim --help` does not load numpy and the model."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'memcgsim' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
