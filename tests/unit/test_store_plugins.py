"""Store plugins: third-party stores chosen by URL scheme (``mindmesh_auth.stores`` entry points).

Each test installs its plugins as real distributions: a ``<name>-<version>.dist-info``
folder (``METADATA``, ``entry_points.txt``) and the plugin's module in a fresh
folder put on ``sys.path``, which is what an installed package looks like to
``importlib.metadata``. Nothing is cached between lookups, so a plugin
installed mid-process is found by the next wiring.
"""

from __future__ import annotations

import logging
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mindmesh_auth import AuthConfig, ConfigurationError, MindmeshAuth, StorageUnavailable
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.testing import Outbox, test_config
from mindmesh_auth.wiring import ENTRY_POINT_GROUP, builtin_schemes, redact_url, store_from_url

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # for the _ci helper
from _ci import require  # noqa: E402

PASSWORD = "correct horse battery staple"

# The plugin under test: a memory store that remembers the URL it was built from
# and notes what happens to it in the file the URL's path names.
JOURNAL_STORE = """
from pathlib import Path
from urllib.parse import urlsplit

from mindmesh_auth.adapters.memory import MemoryStore


class JournalStore(MemoryStore):
    def __init__(self, url):
        super().__init__()
        self.url = url
        self.journal = Path(urlsplit(url).path)
        self._note("open " + url)

    @classmethod
    def from_url(cls, url):
        return cls(url)

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

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(dist, {scheme: "module:attr"}, {"module.py": source})``: a distribution on ``sys.path``."""
    packages: set[str] = set()

    def install_(dist: str, entry_points: dict[str, str], sources: dict[str, str], version: str = "1.0") -> Path:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
        for relative, source in sources.items():
            path = site / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
            packages.add(relative.split("/")[0].removesuffix(".py"))
        monkeypatch.syspath_prepend(str(site))
        return site

    yield install_
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[name]


@pytest.fixture
def journal(install: Install, tmp_path: Path) -> Path:
    """The journal plugin installed for ``journal://``; returns the journal file its URLs name."""
    install("mindmesh-journal-store", {"journal": "journal_store:from_url"}, {"journal_store.py": JOURNAL_STORE})
    return tmp_path / "journal.log"


def refused(url: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        store_from_url(url)
    assert info.value.variable == "AUTH_DATABASE_URL"
    return info.value


# -- a plugin is reached by URL, from every entry ----------------------------------


def test_the_facade_reaches_a_plugin_store_by_url_and_the_whole_flow_runs_on_it(journal: Path) -> None:
    url = f"journal://ada:s3cret@localhost{journal}"
    outbox = Outbox()
    with MindmeshAuth(store=url, mailer=outbox, config=test_config()) as auth:
        store = auth.store
        assert type(store).__name__ == "JournalStore" and isinstance(store, MemoryStore)
        assert store.url == url  # type: ignore[attr-defined]  # the factory got the whole URL
        auth.create_schema()
        user = auth.auth.register("ada@example.com", PASSWORD)
        auth.auth.login("ada@example.com", PASSWORD)
        result = auth.auth.verify_otp("ada@example.com", outbox.last_code("ada@example.com"), "login")
        assert auth.auth.get_user_from_token(result.access_token).id == user.id
        assert store.sessions.get(result.session_id) is not None  # the session lives in the plugin's store
    assert journal.read_text().splitlines() == [f"open {url}", "create_schema", "close users=ada@example.com"]


def test_auth_database_url_reaches_a_plugin_store(journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "SMTP_HOST", "AUTH_PASSWORD_PEPPER", "AUTH_JWT_PREVIOUS_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTH_DATABASE_URL", f"journal://{journal}")
    monkeypatch.setenv("AUTH_JWT_SECRET", "plugins-jwt-Rk5Xa8Ft3Lv1Nc7Qw9Bm2Hz4Sd6Jp0Ue")
    monkeypatch.setenv("AUTH_REFRESH_SECRET", "plugins-rfr-Tm2Ow6Gy9Kb4Xe1Vs7Ca3Pq8Ln5Zh0Dj")
    monkeypatch.setenv("AUTH_BCRYPT_ROUNDS", "10")
    assert AuthConfig.from_env().database_url == f"journal://{journal}"
    outbox = Outbox()
    with MindmeshAuth(mailer=outbox) as auth:  # config and store from the environment
        assert type(auth.store).__name__ == "JournalStore"
        auth.auth.register("env@example.com", PASSWORD)
        auth.auth.login("env@example.com", PASSWORD)
        assert auth.auth.verify_otp("env@example.com", outbox.last_code("env@example.com"), "login").access_token
    assert journal.read_text().splitlines()[-1] == "close users=env@example.com"


@pytest.mark.parametrize("value", ["journal_store:from_url", "journal_store:JournalStore.from_url", "journal_store:JournalStore"])
def test_an_entry_point_may_name_a_function_a_classmethod_or_the_class(install: Install, tmp_path: Path, value: str) -> None:
    install("mindmesh-journal-store", {"journal": value}, {"journal_store.py": JOURNAL_STORE})
    store = store_from_url(f"journal://{tmp_path}/j.log")
    assert type(store).__name__ == "JournalStore"


def test_schemes_match_whatever_their_case(install: Install, tmp_path: Path) -> None:
    install("mindmesh-journal-store", {"Journal": "journal_store:from_url"}, {"journal_store.py": JOURNAL_STORE})
    assert type(store_from_url(f"JOURNAL://{tmp_path}/j.log")).__name__ == "JournalStore"


def test_a_plugin_installed_mid_process_is_found_by_the_next_wiring(install: Install, tmp_path: Path) -> None:
    assert "'journal'" in str(refused(f"journal://{tmp_path}/j.log"))
    install("mindmesh-journal-store", {"journal": "journal_store:from_url"}, {"journal_store.py": JOURNAL_STORE})
    assert type(store_from_url(f"journal://{tmp_path}/j.log")).__name__ == "JournalStore"


# -- what a plugin cannot do ---------------------------------------------------------


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_a_plugin_cannot_take_over_a_built_in_scheme(
    scheme: str, install: Install, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if scheme == "sqlite":
        require("peewee")
    hijack = "from mindmesh_auth.adapters.memory import MemoryStore\n\ndef from_url(url):\n    raise AssertionError('called')\n"
    install("hijacking-store", {scheme: "hijack_store:from_url", "memory": "hijack_store:from_url"}, {"hijack_store.py": hijack})
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/auth.db"
    with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
        store = store_from_url(url)
    try:
        assert type(store).__module__.startswith("mindmesh_auth.adapters.")  # the built-in store
        assert "hijack_store" not in sys.modules  # the plugin was not even imported
    finally:
        store.close()
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "hijacking-store 1.0" in warning and f"{scheme}:// is a built-in scheme" in warning


def test_two_distributions_claiming_one_scheme_are_refused_naming_both(install: Install, tmp_path: Path) -> None:
    install("mindmesh-journal-store", {"journal": "journal_store:from_url"}, {"journal_store.py": JOURNAL_STORE})
    install("other-journal", {"journal": "other_journal:from_url"}, {"other_journal.py": JOURNAL_STORE}, version="2.3")
    message = str(refused(f"journal://{tmp_path}/j.log"))
    assert "'journal' is claimed by more than one store plugin" in message
    assert "'journal = journal_store:from_url' of mindmesh-journal-store 1.0" in message
    assert "'journal = other_journal:from_url' of other-journal 2.3" in message
    assert "journal_store" not in sys.modules and "other_journal" not in sys.modules  # neither was picked


def test_an_unknown_scheme_names_it_and_lists_the_known_ones(journal: Path) -> None:
    message = str(refused("nosuchdb://db.example/app"))
    assert message.startswith("Unsupported database URL scheme 'nosuchdb'.")
    assert "Built-in schemes: " + ", ".join(builtin_schemes()) + "." in message
    assert {"memory", "sqlite", "postgresql", "mysql", "mongodb"} <= set(builtin_schemes())
    assert "Installed store plugins: journal (mindmesh-journal-store)." in message
    assert ENTRY_POINT_GROUP in message and "docs/plugins.md" in message


@pytest.mark.parametrize("url", ["", "not a url", "my_scheme://x", "://host/db"])
def test_a_url_without_a_scheme_is_refused(url: str) -> None:
    assert "scheme://" in str(refused(url))


# -- broken plugins: a clear ConfigurationError naming the plugin -------------------

BROKEN = {
    "import": "import mindmesh_no_such_driver\n\ndef from_url(url):\n    return None\n",
    "raises": "def from_url(url):\n    raise RuntimeError('cannot reach ' + url)\n",
    "returns": "def from_url(url):\n    return {'url': url}\n",
    "not-callable": "from_url = 'journal_store:from_url'\n",
}


@pytest.mark.parametrize(
    ("case", "says", "cause"),
    [
        ("import", "cannot be loaded", ModuleNotFoundError),
        ("raises", "failed to build a store", RuntimeError),
        ("returns", "returned a dict, not a mindmesh_auth.core.ports.Store", None),
        ("not-callable", "names a str, not a factory callable with the URL", None),
    ],
)
def test_a_broken_plugin_is_a_configuration_error_naming_its_distribution(
    case: str, says: str, cause: type[BaseException] | None, install: Install
) -> None:
    install("broken-store", {"broken": "broken_store:from_url"}, {"broken_store.py": BROKEN[case]}, version="0.3")
    error = refused("broken://admin:hunter2@db.example/app")
    message = str(error)
    assert message.startswith(f"The store plugin for broken:// URLs {says}")
    assert "entry point 'broken = broken_store:from_url' of broken-store 0.3" in message
    assert "hunter2" not in message  # the plugin's error quoted the URL: its password is masked
    if cause is None:
        assert error.__cause__ is None
    else:
        assert isinstance(error.__cause__, cause)
        assert cause.__name__ in message
    if case == "raises":
        assert "cannot reach broken://admin:***@db.example/app" in message


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        ("ConfigurationError('strict:// needs a path.', variable='AUTH_DATABASE_URL')", ConfigurationError),
        ("StorageUnavailable('The strict server is down.')", StorageUnavailable),
    ],
)
def test_a_plugins_own_mindmesh_errors_pass_through_unchanged(raised: str, expected: type[Exception], install: Install) -> None:
    source = f"from mindmesh_auth import ConfigurationError, StorageUnavailable\n\ndef from_url(url):\n    raise {raised}\n"
    install("strict-store", {"strict": "strict_store:from_url"}, {"strict_store.py": source})
    with pytest.raises(expected) as info:
        store_from_url("strict://x")
    assert type(info.value) is expected and info.value.__cause__ is None
    assert str(info.value) in raised  # the plugin's own message, not wrapped


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("journal://ada:s3cret@localhost/tmp/j.log", "journal://ada:***@localhost/tmp/j.log"),
        (
            "acme://:pw@db.example:7000/app?Token=t&mode=fast&api_key=k",
            "acme://:***@db.example:7000/app?Token=***&mode=fast&api_key=***",
        ),
        ("journal:///tmp/j.log?password=p", "journal:///tmp/j.log?password=***"),
        ("postgresql://auth:p%40ss@db/app?sslmode=require", "postgresql://auth:***@db/app?sslmode=require"),
        ("sqlite:///auth.db", "sqlite:///auth.db"),
        ("acme://[::1", "<invalid URL>"),
    ],
)
def test_redact_url_masks_secrets_of_any_scheme(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- the documented example stays in step with the code -----------------------------


# docs/plugins.md's AcmeStore needs its driver; this stand-in keeps what the factory passes it.
ACME_STORE_STAND_IN = """
from mindmesh_auth.adapters.memory import MemoryStore


class AcmeStore(MemoryStore):
    def __init__(self, *, host, port, database, user, password):
        super().__init__()
        self.options = {"host": host, "port": port, "database": database, "user": user, "password": password}
"""


def test_the_documented_plugin_installs_and_its_factory_runs(install: Install) -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    python = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    for index, block in enumerate(python):
        compile(block, f"docs/plugins.md[{index}]", "exec")  # every example is valid Python
    (factory,) = [b for b in python if b.startswith("# mindmesh_auth_acme/__init__.py")]
    (pyproject,) = [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", text, flags=re.S)]
    groups = pyproject["project"]["entry-points"]
    assert list(groups) == [ENTRY_POINT_GROUP]
    install(
        pyproject["project"]["name"],
        groups[ENTRY_POINT_GROUP],
        {"mindmesh_auth_acme/__init__.py": factory, "mindmesh_auth_acme/store.py": ACME_STORE_STAND_IN},
        version=pyproject["project"]["version"],
    )

    store = store_from_url("acme://auth:p%40ss@db.example:7001/app")
    assert type(store).__module__ == "mindmesh_auth_acme.store"
    assert store.options == {  # type: ignore[attr-defined]
        "host": "db.example",
        "port": 7001,
        "database": "app",
        "user": "auth",
        "password": "p@ss",
    }
    assert store_from_url("ACME://db.example/app").options["port"] == 7000  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match=r"^An AcmeDB URL looks like acme://"):  # the plugin's own error
        store_from_url("acme://db.example")
