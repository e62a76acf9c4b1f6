"""Alembic's environment. utils/schema.py hands it a connection already inside a transaction and holding
the schema lock, so every revision runs in that one transaction (all or nothing on PostgreSQL, and on
SQLite too, whose BEGIN IMMEDIATE utils/schema.py issued). Given only a URL (a developer drafting a
revision with `command.revision(config(url), ..., autogenerate=True)`) it connects by itself; in offline
mode (`sql=True`) it prints the SQL for a DBA to read or apply by hand."""
import sqlalchemy as sa
from alembic import context

from utils.tables import metadata  # the tables as the code uses them: what autogenerate compares against

config = context.config


def run(connection: sa.Connection) -> None:
    # SQLite cannot ALTER most of a table: batch mode rebuilds it, so one revision serves both databases.
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run(config.attributes["connection"])
else:
    with sa.create_engine(config.get_main_option("sqlalchemy.url")).begin() as own:
        run(own)
