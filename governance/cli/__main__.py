"""`python -m governance.cli`, as the served workers and the tests start it."""

from governance.cli import main

main()
