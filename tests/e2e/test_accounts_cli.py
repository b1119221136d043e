"""The database from the command line: `db upgrade` migrates it, and check-config reports a
database that cannot be reached or is not migrated (never its password)."""

from __future__ import annotations

from pathlib import Path

from fal_openai_proxy.store.db import head_revision

from ..support.postgres import PostgresServer
from ..support.processes import free_port
from .test_cli import cli


def test_check_config_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://proxy:pg-secret-8d1e@127.0.0.1:{free_port()}/accounts"
    result = cli(["check-config"], env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot reach Postgres at 127.0.0.1:{url.split(':')[-1].split('/')[0]}" in result.stdout
    assert "pg-secret-8d1e" not in result.stdout + result.stderr
    bad = cli(["check-config"], env={"DATABASE_URL": "mysql://x/y"}, cwd=tmp_path)
    assert "DATABASE_URL: must be `sqlite:///path`" in bad.stdout


def test_db_upgrade_migrates_what_check_config_calls_unmigrated(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database()
    env = {"DATABASE_URL": url}
    before = cli(["check-config"], env=env, cwd=tmp_path)
    assert before.returncode == 1
    assert f"is at schema revision (none), not {head_revision()}" in before.stdout
    assert "fal-openai-proxy db upgrade" in before.stdout
    upgraded = cli(["db", "upgrade"], env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert f"is at schema revision {head_revision()}" in upgraded.stdout
    after = cli(["check-config"], env=env, cwd=tmp_path)
    assert after.returncode == 0, after.stdout


def test_a_sqlite_file_is_created_where_it_can_be(tmp_path: Path) -> None:
    fresh = cli(["check-config"], env={"DATABASE_URL": "sqlite:///./new.db"}, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stdout  # created and migrated at start
    assert not (tmp_path / "new.db").exists()  # checking creates nothing
    nowhere = cli(["check-config"], env={"DATABASE_URL": "sqlite:///./no/such/x.db"}, cwd=tmp_path)
    assert "is not a folder this process can write in" in nowhere.stdout
    assert (
        cli(["db", "upgrade"], env={"DATABASE_URL": "sqlite:///./new.db"}, cwd=tmp_path).returncode
        == 0
    )
    assert (tmp_path / "new.db").exists()
    off = cli(["db", "upgrade"], env={"DATABASE_URL": "none"}, cwd=tmp_path)
    assert off.returncode == 1 and "DATABASE_URL is none" in off.stdout
