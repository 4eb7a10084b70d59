"""``python -m castoff``: the same as the ``castoff`` command."""

from castoff.cli import main

raise SystemExit(main())
