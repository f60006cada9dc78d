"""Use cases run on the in-memory unit of work (`tests.unit.fakes`): no database, no network."""
