"""`python -m memcgsim`: the command line."""

from .cli import main

raise SystemExit(main())
