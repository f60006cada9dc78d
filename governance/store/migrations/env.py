"""Alembic environment: runs the migrations on the database named by the caller.

The URL comes from `upgrade(url)` in governance.store.database, else from
`alembic -x url=... upgrade head`, else from `sqlalchemy.url` in alembic.ini.
"""

from logging.config import fileConfig

from alembic import context
from sqlmodel import SQLModel

import governance.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from governance.store.database import make_engine, ours

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = (
    config.attributes.get("url")
    or context.get_x_argument(as_dictionary=True).get("url")
    or config.get_main_option("sqlalchemy.url")
)
if not url:
    raise SystemExit("no database URL: run `alembic -x url=DATABASE_URL upgrade head`")

if context.is_offline_mode():
    # `alembic upgrade head --sql`: print the DDL for a DBA instead of running it.
    context.configure(
        url=url, target_metadata=SQLModel.metadata, literal_binds=True, include_name=ours
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            # make_engine gives SQLite transactional DDL too: a failed upgrade changes nothing.
            # Batch mode lets later ALTERs work on SQLite, which rebuilds the table instead.
            context.configure(
                connection=connection,
                target_metadata=SQLModel.metadata,
                transactional_ddl=True,
                render_as_batch=True,
                include_name=ours,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
