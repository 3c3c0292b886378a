"""``python -m chatlog``: the same as the ``chatlog`` command."""

from chatlog.cli import main

raise SystemExit(main())
