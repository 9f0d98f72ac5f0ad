"""The suite's cache of compiled SQL across engines (tests/compiled_statements.py): a
statement compiled for one engine runs the same through another, and nothing is shared
between kinds of database."""

import sqlalchemy as sa

from tests.compiled_statements import AcrossEngines, engine_options

TABLE = sa.Table(
    "things",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(20)),
    sa.Column("seen", sa.DateTime(timezone=True)),
)


def test_a_second_engine_runs_what_the_first_compiled(tmp_path, monkeypatch):
    cache = AcrossEngines()
    monkeypatch.setattr("tests.compiled_statements.SHARED", cache)
    results = []
    for number in (1, 2):
        each = sa.create_engine(f"sqlite:///{tmp_path / f'{number}.db'}", **engine_options({}))
        with each.begin() as connection:
            TABLE.create(connection)
            connection.execute(sa.insert(TABLE), [{"name": f"a{number}"}, {"name": "b"}])
            connection.execute(sa.insert(TABLE).values(name=f"c{number}"))
            query = sa.select(TABLE.c.name).where(TABLE.c.name != "b").order_by(TABLE.c.id)
            results.append(connection.execute(query).scalars().all())
        if number == 1:
            compiled = len(cache)
        each.dispose()
    assert results == [["a1", "c1"], ["a2", "c2"]]
    assert compiled >= 3 and len(cache) == compiled  # the second engine compiled nothing


def test_kinds_of_database_and_versions_are_apart():
    cache = AcrossEngines()
    sqlite = sa.create_engine("sqlite://").dialect
    postgres = sa.create_engine("postgresql+psycopg://").dialect
    cache[(sqlite, "statement")] = "for sqlite"
    assert cache.get((postgres, "statement")) is None
    assert cache.get((sa.create_engine("sqlite://").dialect, "statement")) == "for sqlite"
    newer = sa.create_engine("sqlite://").dialect
    newer.server_version_info = (99, 0, 0)
    assert cache.get((newer, "statement")) is None


def test_a_key_without_a_dialect_is_kept_as_it_is():
    cache = AcrossEngines()
    cache[("statement", 1)] = "compiled"
    assert cache.get(("statement", 1)) == "compiled" and cache.get(("statement", 2)) is None
