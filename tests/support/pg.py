"""pytest plugin: the ledger and engine suites on SQLite AND on a real PostgreSQL server.

* ``pg_cluster`` (session): ONE throwaway cluster (tests/support/pg_cluster.py), started on first use, on a free
  loopback port; a migrated template database is cloned for each test (fast: no alembic per test).
* ``ledger_backend``: "sqlite" or "pg". The suites in ``BOTH_DATABASES`` run once per value; on "pg" the
  test gets a fresh database and env MALL_CONNECTOR_LEDGER_URL points every config (the CLI and daemon
  subprocesses included) at it, so the tests themselves need no change.
* ``ledger_url``: the URL a test should open: a SQLite file in tmp_path, or the fresh PostgreSQL database.
* ``pg_url``: a fresh, empty (not migrated) PostgreSQL database, for tests that only make sense there.

No server can be started (no binaries, initdb fails): the "pg" cases are skipped with the reason; with
CI=true they fail instead, so CI cannot go green without PostgreSQL.
"""

from __future__ import annotations

import os

import pytest

from tests.support.pg_cluster import PgCluster, PgUnavailable

#: Run on both databases (path prefixes of test files). Chosen to cover the ledger repositories and
#: every engine (outbound push, inbound pipeline, crash recovery, steering, exports and reports) while
#: keeping `make test` livable; docs/scaling.md lists them.
BOTH_DATABASES = (
    "tests/integration/sync/",
    "tests/integration/ops/",
    "tests/unit/connector/test_steering.py",
    "tests/integration/pg/test_ledger_both.py",
)
TEMPLATE = "mc_template"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


class _Lazy:
    cluster: PgCluster | None = None
    error: str | None = None


def _cluster(config: pytest.Config) -> PgCluster:
    if _Lazy.cluster is None and _Lazy.error is None:
        try:
            cluster = PgCluster.start()
            scan = config.pluginmanager.get_plugin("mall-connector-logscan")
            if scan is not None:  # the role's password is a secret no log line may carry
                scan.scanner.secrets.add(cluster.password)
            url = cluster.create_database(TEMPLATE)
            from connector.ledger import open_ledger

            open_ledger(url).close()  # migrated once; each test's database is a copy
            _Lazy.cluster = cluster
        except PgUnavailable as e:
            _Lazy.error = str(e)
    if _Lazy.cluster is None:
        message = f"PostgreSQL server could not be started: {_Lazy.error}"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    return _Lazy.cluster


def pytest_sessionfinish(session, exitstatus):
    if _Lazy.cluster is not None:
        _Lazy.cluster.destroy()
        _Lazy.cluster = None


def pytest_generate_tests(metafunc):
    if "ledger_backend" in metafunc.fixturenames and metafunc.definition.nodeid.startswith(BOTH_DATABASES):
        metafunc.parametrize("ledger_backend", ["sqlite", "pg"], indirect=True)


@pytest.fixture(scope="session")
def pg_cluster(request) -> PgCluster:
    return _cluster(request.config)


def _fresh(cluster: PgCluster, template: str | None):
    url = cluster.create_database(template=template)
    return url, url.rsplit("/", 1)[1]


@pytest.fixture(autouse=True)
def ledger_backend(request):
    backend = getattr(request, "param", "sqlite")
    if backend != "pg":
        yield backend
        return
    cluster = _cluster(request.config)
    url, name = _fresh(cluster, TEMPLATE)
    mp = pytest.MonkeyPatch()
    mp.setenv("MALL_CONNECTOR_LEDGER_URL", url)
    request.node.pg_url = url
    from connector.logs import register_secret

    register_secret(cluster.password)
    try:
        yield backend
    finally:
        mp.undo()
        try:
            cluster.drop_database(name)
        except Exception:  # noqa: BLE001 - the server may be stopped by the test; the cluster goes at the end
            pass


@pytest.fixture
def ledger_url(request, ledger_backend, tmp_path) -> str:
    if ledger_backend == "pg":
        return request.node.pg_url
    return "sqlite:///" + str(tmp_path / "ledger.db")


@pytest.fixture
def pg_url(pg_cluster):
    url, name = _fresh(pg_cluster, None)
    from connector.logs import register_secret

    register_secret(pg_cluster.password)
    yield url
    try:
        pg_cluster.drop_database(name)
    except Exception:  # noqa: BLE001
        pass
