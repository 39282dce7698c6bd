"""``mindmesh-auth migrate``: upgrading a database made by the previous layout and
adding the columns of ``--user-model``, through click's ``CliRunner`` (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _ci import require

require("click")
require("peewee")

from click.testing import CliRunner, Result  # noqa: E402

from mindmesh_auth.adapters.peewee import PeeweeStore  # noqa: E402
from mindmesh_auth.cli import cli  # noqa: E402
from mindmesh_auth.core.schema import SCHEMA_VERSION  # noqa: E402

ENV = {
    "AUTH_JWT_SECRET": "uboBPvCpbrqPJEXDo4IQgh_RvApTqrb7OCgsBUBD",
    "AUTH_REFRESH_SECRET": "FK7-4bkoIr6NfG2e8-cbNmofu4tTHSe96i2SXUFf",
    "AUTH_PASSWORD_PEPPER": "iDTaK7pCHx2NAI-2aG24a1QuB2lmLNNcn_MTs8n_",
    "AUTH_DATABASE_URL": "",
    "DATABASE_URL": "",
    "AUTH_USER_MODEL": "",
}

APP_MODEL = '''
import peewee
from mindmesh_auth.adapters.peewee import BaseUserModel


class AppUser(BaseUserModel):
    nickname = peewee.CharField(max_length=64, null=True)
'''


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    (tmp_path / "migrate_app_models.py").write_text(APP_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--database-url", url, *args], env=ENV, catch_exceptions=False)


def _previous_layout(url: str) -> PeeweeStore:
    store = PeeweeStore.from_url(url)
    store.database.create_tables([m for m in store.models.all() if m is not store.models.Version])
    return store


def _tables(store: PeeweeStore) -> set[str]:
    return set(store.database.get_tables())


def test_migrate_upgrades_the_previous_layout(folder: Path) -> None:
    url = f"sqlite:///{folder}/auth.db"
    store = _previous_layout(url)
    before = _tables(store)

    dry = _run(url, "migrate", "--dry-run")

    assert dry.exit_code == 0, dry.output
    lines = dry.output.strip().splitlines()
    assert any(line.startswith('CREATE TABLE IF NOT EXISTS "mm_auth_schema_version"') for line in lines)
    assert any(line.startswith('INSERT') and "mm_auth_schema_version" in line for line in lines)
    assert lines[-1] == f"schema version none -> {SCHEMA_VERSION} on {url}: dry run, nothing changed"
    assert _tables(store) == before  # nothing changed

    done = _run(url, "migrate")

    assert done.exit_code == 0, done.output
    ran = done.output.strip().splitlines()
    # The same statements ran (the recorded time aside).
    def without_inserts(output: list[str]) -> list[str]:
        return [line for line in output[:-1] if not line.startswith("INSERT")]

    assert without_inserts(ran) == without_inserts(lines)
    assert done.output.strip().splitlines()[-1].startswith(f"schema version none -> {SCHEMA_VERSION} on {url}: ")
    assert "mm_auth_schema_version" in _tables(store)
    assert store.schema_status().up_to_date

    again = _run(url, "migrate")
    assert again.exit_code == 0
    assert again.output == f"schema version {SCHEMA_VERSION} on {url}: up to date, nothing to do\n"
    store.close()


def test_init_on_the_previous_layout_says_to_migrate(folder: Path) -> None:
    url = f"sqlite:///{folder}/auth.db"
    store = _previous_layout(url)
    result = _run(url, "init")
    assert result.exit_code == 1
    assert "schema_mismatch" in result.output and "mindmesh-auth migrate" in result.output
    assert "mm_auth_schema_version" not in _tables(store)
    store.close()


def test_migrate_adds_the_columns_of_the_user_model(folder: Path) -> None:
    url = f"sqlite:///{folder}/auth.db"
    assert _run(url, "init").exit_code == 0
    model = "migrate_app_models:AppUser"

    refused = _run(url, "--user-model", model, "init")
    assert refused.exit_code == 1 and "nickname" in refused.output and "mindmesh-auth migrate" in refused.output

    dry = _run(url, "--user-model", model, "migrate", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert planned == {
        "from_version": SCHEMA_VERSION,
        "to_version": SCHEMA_VERSION,
        "applied": False,
        "statements": ['ALTER TABLE "mm_auth_users" ADD COLUMN "nickname" VARCHAR(64)'],
    }

    done = _run(url, "--user-model", model, "migrate", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {**planned, "applied": True}
    store = PeeweeStore.from_url(url)
    assert "nickname" in {c.name for c in store.database.get_columns("mm_auth_users")}
    store.close()

    assert _run(url, "--user-model", model, "init").exit_code == 0
    users = _run(url, "--user-model", model, "users", "list", "--json")
    assert users.exit_code == 0, users.output


def test_migrate_help_names_the_dry_run(folder: Path) -> None:
    result = CliRunner().invoke(cli, ["migrate", "--help"], env=ENV)
    assert result.exit_code == 0 and "--dry-run" in result.output and "--json" in result.output
