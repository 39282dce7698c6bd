"""The ``mindmesh-auth`` command line on a store plugin (``mindmesh_auth.stores`` entry points).

The plugins are installed as distributions (``*.dist-info`` with ``METADATA`` and
``entry_points.txt``, and their modules) in a folder the CLI subprocess gets on
its ``PYTHONPATH``, which is what an installed package looks like to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _ci import require

require("click")

JWT_SECRET = "cli-jwt-Vb4Nx9Kq2Wm7Tz1Hr6Lc3Fp8Ds5Gj0Ya"
REFRESH_SECRET = "cli-rfr-Ep7Su2Ho9Ci4Mw1Ky6Qa3Zt8Xn5Bf0Ld"
PASSWORD = "correct horse battery staple"
GROUP = "mindmesh_auth.stores"

_DROP = ("AUTH_", "DATABASE_URL", "SMTP_", "OTP_", "SESSION_DAYS", "ACCESS_TOKEN_MINUTES", "MINDMESH_AUTH_DEBUG", "PYTHONPATH")

# A memory store that notes what happens to it in the file its URL's path names:
# the only trace a store in a finished subprocess leaves.
JOURNAL_STORE = """
from pathlib import Path
from urllib.parse import urlsplit

from mindmesh_auth.adapters.memory import MemoryStore


class JournalStore(MemoryStore):
    def __init__(self, url):
        super().__init__()
        self.journal = Path(urlsplit(url).path)
        self._note("open " + url)

    def _note(self, line):
        with self.journal.open("a") as f:
            f.write(line + "\\n")

    def create_schema(self):
        self._note("create_schema")

    def close(self):
        self._note("close users=" + ",".join(u.email for u in self.users.list(limit=1000)))


def from_url(url):
    return JournalStore(url)
"""

BROKEN_STORE = "def from_url(url):\n    raise RuntimeError('cannot reach ' + url)\n"


def _install(site: Path, dist: str, version: str, scheme: str, module: str, source: str) -> None:
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{scheme} = {module}:from_url\n")
    (site / f"{module}.py").write_text(source)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    _install(folder, "mindmesh-journal-store", "1.0", "journal", "journal_store", JOURNAL_STORE)
    _install(folder, "broken-store", "0.3", "broken", "broken_store", BROKEN_STORE)
    return folder


def run(site: Path, cwd: Path, *args: str, input: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    environ.update(AUTH_JWT_SECRET=JWT_SECRET, AUTH_REFRESH_SECRET=REFRESH_SECRET, AUTH_BCRYPT_ROUNDS="10", PYTHONPATH=str(site))
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "mindmesh_auth", *args],
        input=input,
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,  # no stray .env file
        timeout=60,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_the_cli_runs_on_a_plugin_store_and_masks_its_urls_secrets(site: Path, tmp_path: Path) -> None:
    journal = tmp_path / "init.log"
    url = f"journal://ada:s3cret@localhost{journal}"
    proc = run(site, tmp_path, "--database-url", url, "init")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"schema ready on journal://ada:***@localhost{journal} (missing tables and indexes created)\n"
    assert "s3cret" not in proc.stdout + proc.stderr
    assert journal.read_text().splitlines() == [f"open {url}", "create_schema", "close users="]

    # From AUTH_DATABASE_URL; the effect is in the plugin's store: the user was added to it.
    journal = tmp_path / "users.log"
    proc = run(
        site,
        tmp_path,
        "users",
        "create",
        "bob@example.com",
        "--password-stdin",
        input=PASSWORD + "\n",
        AUTH_DATABASE_URL=f"journal://{journal}",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and "Traceback" not in proc.stderr
    assert journal.read_text().splitlines() == [f"open journal://{journal}", "close users=bob@example.com"]

    # Secret-looking query parameters are masked too.
    journal = tmp_path / "purge.log"
    proc = run(site, tmp_path, "--database-url", f"journal://{journal}?token=t0ken&mode=fast", "purge-expired")
    assert proc.returncode == 0, proc.stderr
    assert f"purging expired rows on journal://{journal}?token=***&mode=fast" in proc.stderr
    assert "t0ken" not in proc.stdout + proc.stderr
    assert journal.exists()


def test_user_model_is_refused_for_a_plugin_scheme(site: Path, tmp_path: Path) -> None:
    journal = tmp_path / "never.log"
    proc = run(site, tmp_path, "--database-url", f"journal://{journal}", "--user-model", "appmodels:AppUser", "users", "list")
    line = one_line_error(proc)
    assert line.startswith("error: configuration_error: --user-model applies to SQL databases only (sqlite://, ")
    assert "not to journal:// URLs" in line
    assert not journal.exists()  # refused before the plugin's store was built


def test_unknown_schemes_and_broken_plugins_are_one_line_errors(site: Path, tmp_path: Path) -> None:
    line = one_line_error(run(site, tmp_path, "--database-url", "nosuch://db.example/app", "users", "list"))
    assert line.startswith("error: configuration_error: Unsupported database URL scheme 'nosuch'.")
    assert "Installed store plugins: broken (broken-store), journal (mindmesh-journal-store)." in line
    assert "docs/plugins.md" in line

    line = one_line_error(run(site, tmp_path, "users", "list", AUTH_DATABASE_URL="broken://admin:hunter2@db.example/app"))
    assert line.startswith("error: configuration_error: The store plugin for broken:// URLs failed to build a store")
    assert "entry point 'broken = broken_store:from_url' of broken-store 0.3" in line
    assert "RuntimeError: cannot reach broken://admin:***@db.example/app" in line
    assert "hunter2" not in line
