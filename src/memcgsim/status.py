"""The exit statuses of the command line, defined once: the run and validation results that
decide them and the CLI that returns them both use these."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    #: the model raised an error, an expectation failed, or the model differs from the kernel
    ERROR = 1
    #: bad arguments or an invalid input file (file:line:column)
    INVALID = 2
    #: the invariant checker found violations
    VIOLATIONS = 3
    #: validate: the real-kernel set-up or the guest failed
    SETUP = 4
