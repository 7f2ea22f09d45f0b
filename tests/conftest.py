"""Shared fixtures: real brokers on free ports, temporary data directories, polling helpers."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from farsight.broker import AmqttBroker, MosquittoBroker, mosquitto_binary

if TYPE_CHECKING:
    from farsight.pgserver import TempPostgres

IN_CI = os.environ.get("CI", "").lower() == "true"


ONE_WORKER = {"tests/browser/": "browser-demo"}
"""Folders whose tests run on one pytest-xdist worker, as one unit: the browser tests share one
running demo (a package fixture, so one per worker that runs any of them), which keeps two cores
busy."""


LAST_IN_GROUP = "tests/browser/test_queue_at_scale.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first (marked ``e2e`` or ``slow``), in their order otherwise: pytest-xdist
    hands tests out in this order, so a test of a minute starts at once on one worker while the
    others share the short ones, instead of starting last and ending the run alone."""
    items.sort(
        key=lambda item: not (any(item.iter_markers("e2e")) or any(item.iter_markers("slow")))
    )
    # The browser tests share one demo; the one that adds 10,000 open alerts to it goes last, so
    # the others load the desk with the demo's own queue (each load of 10,000 cost seconds).
    items.sort(key=lambda item: item.nodeid.startswith(LAST_IN_GROUP))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (what ./run test uses) with the groups of :data:`ONE_WORKER`.

    pytest-xdist 3.8 groups ``xdist_group`` marks by rewriting node ids, which pytest 9.2 no
    longer lets it do (pytest-xdist issue 1386): the marks are silently ignored. The groups are
    named here by folder instead; every other test is a unit of its own, handed out in
    collection order (long tests first, see above), a group before them.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for folder, group in ONE_WORKER.items():
                if nodeid.startswith(folder):
                    return group
            return nodeid

    return FolderGroups(config, log)


def wait_until(
    condition: Callable[[], object],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def mosquitto_path() -> str:
    """The mosquitto binary; its absence fails the run (./run test installs it)."""
    path = mosquitto_binary()
    if path is None:
        pytest.fail(
            "mosquitto is not installed: ./run test installs it with apt-get; "
            "on other systems install the 'mosquitto' package",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def mosquitto(
    mosquitto_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MosquittoBroker]:
    """A real mosquitto, configured from deploy/mosquitto.conf, on a free loopback port."""
    broker = MosquittoBroker(data_dir=tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.close()


@pytest.fixture
def fresh_mosquitto(mosquitto_path: str, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto of this test's own, for tests that restart or stop the broker."""
    broker = MosquittoBroker(data_dir=tmp_path / "mosquitto")
    yield broker
    broker.close()


@pytest.fixture
def amqtt_broker() -> Iterator[AmqttBroker]:
    """The embedded pure-Python broker the demo falls back to."""
    broker = AmqttBroker()
    yield broker
    broker.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "var"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TempPostgres]:
    """A real PostgreSQL server (initdb in a temporary folder, free port) for the whole run.

    Its absence fails the run: ./run test installs PostgreSQL with apt-get.
    """
    from farsight.errors import StoreError
    from farsight.pgserver import TempPostgres

    try:
        server = TempPostgres()
    except StoreError as exc:
        pytest.fail(f"cannot start PostgreSQL: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: TempPostgres) -> str:
    """A database at the newest schema, which each test's own database is a copy of: copying
    is as quick as making an empty one, migrating one costs some 50-150 ms."""
    from farsight.db import Database
    from farsight.migrate import ensure_schema

    url = postgres_server.create_database("template")
    ensure_schema(Database.open(url)).close()
    return url


@pytest.fixture
def postgres_url(postgres_server: TempPostgres, postgres_template: str) -> Iterator[str]:
    """A fresh database of its own at the newest schema, on the run's PostgreSQL server,
    dropped afterwards (``postgres_server.create_database()`` gives an empty one)."""
    url = postgres_server.create_database(template=postgres_template)
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema, copied for each test (see postgres_template)."""
    from farsight.db import Database
    from farsight.migrate import ensure_schema

    path = tmp_path_factory.mktemp("template") / "farsight.db"
    ensure_schema(Database.open(path)).close()
    # The last connection's close checkpoints the write-ahead log into the file and removes it.
    assert not path.with_name("farsight.db-wal").exists()
    return path


def _simulated_day(url: str) -> None:
    from ingest.store import ReadingStore
    from tests.quality_day import make_registry, simulate

    store = ReadingStore(url)
    try:
        simulate(store, make_registry())
    finally:
        store.close()


@pytest.fixture(scope="session")
def quality_day_sqlite(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """An SQLite file holding the simulated day of ``tests/quality_day.py``, played once per
    worker (some seconds): tests copy it rather than play the day again."""
    path = tmp_path_factory.mktemp("quality-day") / "farsight.db"
    shutil.copyfile(sqlite_template, path)
    _simulated_day(str(path))
    return path


@pytest.fixture(scope="session")
def quality_day_postgres(postgres_server: TempPostgres, postgres_template: str) -> str:
    """A PostgreSQL database holding the simulated day, the template of tests' copies."""
    url = postgres_server.create_database("quality_day", template=postgres_template)
    _simulated_day(url)
    return url


def _fresh_copy(request: pytest.FixtureRequest, tmp_path: Path, templates: tuple[str, str]) -> str:
    """A copy of a template on the backend ``request.param`` names: for SQLite the file of the
    fixture ``templates[0]`` copied into ``tmp_path``, for PostgreSQL a database made from the
    fixture ``templates[1]``'s, dropped after the test."""
    sqlite_template, postgres_template = templates
    if request.param == "sqlite":
        path = tmp_path / "farsight.db"
        shutil.copyfile(request.getfixturevalue(sqlite_template), path)
        return str(path)
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database(template=request.getfixturevalue(postgres_template))
    request.addfinalizer(lambda: server.drop_database(url))
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def quality_day(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh copy of the simulated day on each backend (see :func:`backend`)."""
    return _fresh_copy(request, tmp_path, ("quality_day_sqlite", "quality_day_postgres"))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store keeps its tables: an SQLite file, then a PostgreSQL database; both fresh
    and at the newest schema (tests/farsight/test_migrate.py starts from empty ones).

    Tests that take this fixture run once per backend: the same behaviour on both.
    """
    return _fresh_copy(request, tmp_path, ("sqlite_template", "postgres_template"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on a free port serving ``tmp_path/www``: (the folder, its base URL).
    The archive-fetching tests serve their archives (and a pip index) from it."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
