"""`python -m governance`: the `governance` command."""

from governance.cli import main

main()
