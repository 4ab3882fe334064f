"""Alembic environment: the connection comes from mailbot (``mailbot migrate``), or from
``alembic -x url=...`` for developers. No logging.config here: it would silence our loggers."""

from alembic import context
from sqlalchemy import Connection, create_engine

from mailbot.cases.models import Base


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


conn = context.config.attributes.get("connection")
if conn is not None:
    run(conn)
else:
    with create_engine(context.get_x_argument(as_dictionary=True)["url"]).begin() as c:
        run(c)
