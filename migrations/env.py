import logging
from logging.config import fileConfig

from flask import current_app

from alembic import context

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
# The app (or pytest) may have set up logging already; only configure it when nobody has.
if not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')


def get_engine():
    """The app's engine (Flask-SQLAlchemy 3 API)."""
    return current_app.extensions["migrate"].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace(
            '%', '%%')
    except AttributeError:
        return str(get_engine().url).replace('%', '%%')


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


# The key of the advisory lock that migrations take on Postgres (any constant of ours).
MIGRATION_LOCK_KEY = 0x4C554D59  # "LUMY"
MIGRATION_LOCK_WAIT_MS = 120000


def one_migrator_at_a_time(connection):
    """Several instances (or deploy steps) migrating at once on Postgres run one after the
    other: a transaction-level advisory lock, taken first in the migrations' one
    transaction and released with it (a session-level lock would stay with the server
    connection that a transaction pooler hands on, and be released with no one's
    commit). The next migrator then reads the version the first committed and has
    nothing left to do. Its wait may outlast the request limits (set for the
    transaction again afterwards)."""
    config = current_app.config
    limits = (
        "SELECT set_config('statement_timeout', %(statement)s, true), "
        "set_config('lock_timeout', %(lock)s, true)"
    )
    wait = str(MIGRATION_LOCK_WAIT_MS)
    connection.exec_driver_sql(limits, {"statement": wait, "lock": wait})
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%(key)s)", {"key": MIGRATION_LOCK_KEY})
    connection.exec_driver_sql(
        limits,
        {
            "statement": str(config["DB_STATEMENT_TIMEOUT_MS"]),
            "lock": str(config["DB_LOCK_TIMEOUT_MS"]),
        },
    )


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild a table (copy, drop, rename); SQLite's foreign keys
            # would refuse to drop a table others refer to. They are off while migrating
            # (a PRAGMA that only takes effect outside a transaction), checked after, and
            # back on before the connection returns to the pool.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=get_metadata(),
            **conf_args
        )

        try:
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    one_migrator_at_a_time(connection)
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise RuntimeError(f"a migration broke a foreign key: {tuple(broken)}")
        finally:
            if sqlite:
                connection.commit()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
