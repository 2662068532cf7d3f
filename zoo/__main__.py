"""`python -m zoo ...` is the `zoo` command (zoo.commands.cli)."""
from zoo.commands.cli import main

raise SystemExit(main())
