"""The storage adapter: sqlmodel tables, alembic migrations and the decision recorder.

`database` makes engines and migrates; `repository` writes and reads gate decisions. The
domain never imports this package.
"""
