"""The examples in README.md and docs/ run as written (docs that cannot rot)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # for _ci, as the other test modules do


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def runnable(block: str) -> bool:
    # Blocks that need the app's environment or a class body to bind are shown, not run.
    return "from_env()" not in block and "MyStore" not in block


@pytest.mark.parametrize("doc", ["README.md", "docs/testing.md", "docs/sql.md", "docs/integrations.md", "docs/hooks.md"])
def test_documented_examples_run(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The runnable blocks of one page run in order in one namespace, as a reader would.
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    blocks = [b for b in python_blocks(ROOT / doc) if runnable(b)]
    assert blocks
    for index, block in enumerate(blocks):
        exec(compile(block, f"{doc}[{index}]", "exec"), namespace)  # noqa: S102 - our own docs


def test_readme_quick_start_is_executed() -> None:
    blocks = [b for b in python_blocks(ROOT / "README.md") if runnable(b)]
    assert any("verify_otp" in b and "get_user_from_token" in b for b in blocks)


def test_demo_runs_the_whole_flow_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = subprocess.run(
        [sys.executable, "-m", "mindmesh_auth.demo", "--database-url", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for step in ("1. register", "2. login", "3. verify the code", "4. get the user", "5. refresh", "6. logout"):
        assert step in out
    assert "sign-in code is:" in out
    assert "LOGIN_SUCCESS" in out and "LOGOUT" in out
    assert "demo complete" in out
    assert db.exists()


def test_demo_defaults_to_a_fresh_sqlite_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mindmesh_auth.demo"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "on sqlite:///" in proc.stdout and "demo complete" in proc.stdout


def _readme_dev_env_script() -> str:
    blocks = re.findall(r"```sh\n(cat > \.env <<EOF\n.*?\nEOF\n)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert len(blocks) == 1, "README.md has one development .env block (cat > .env <<EOF ... EOF)"
    return blocks[0]


def _write_readme_dev_env(tmp_path: Path) -> Path:
    # Run the README's block as pasted: it generates the secrets with python3 -c '... secrets.token_urlsafe(48)'.
    proc = subprocess.run(["bash", "-euc", _readme_dev_env_script()], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / ".env"


def test_readme_has_no_fixed_example_secrets() -> None:
    text = (ROOT / "README.md").read_text()
    assert not re.search(r"""(jwt_secret|refresh_secret|password_pepper)\s*=\s*["']""", text)
    assert not re.search(r"^AUTH_(JWT|REFRESH)_SECRET=(?!\.\.\.|\$\()", text, flags=re.M)


def test_readme_dev_env_parses_for_a_local_smtp_server(tmp_path: Path) -> None:
    from mindmesh_auth import AuthConfig

    env_file = _write_readme_dev_env(tmp_path)
    config = AuthConfig.from_env(environ={}, env_file=env_file)
    assert config.smtp_security == "none"
    assert (config.smtp_host, config.smtp_port) == ("localhost", 1025)
    assert config.smtp_user is None
    assert config.app_name == "My App"
    assert config.database_url == "sqlite:///auth.db"
    secrets_ = [config.jwt_secret, config.refresh_secret, config.password_pepper]
    assert len(set(secrets_)) == 3 and all(len(s) >= 32 for s in secrets_)
    # Generated afresh each time, never a fixed example.
    again = AuthConfig.from_env(environ={}, env_file=_write_readme_dev_env(tmp_path))
    assert again.jwt_secret != config.jwt_secret


def test_readme_dev_env_sends_the_code_to_a_local_smtp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sample as pasted, against a plain SMTP server on loopback; only the port differs (1025 may be taken).
    import email
    import email.policy
    import socket

    from _ci import require  # type: ignore[import-not-found]

    controller_mod = require("aiosmtpd.controller")
    from mindmesh_auth import AuthConfig, MindmeshAuth

    received: list[email.message.EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            raw = envelope.original_content or envelope.content  # type: ignore[attr-defined]
            received.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
            return "250 Message accepted"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = controller_mod.Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=30.0)
    controller.start()
    try:
        env_file = _write_readme_dev_env(tmp_path)
        monkeypatch.chdir(tmp_path)
        config = AuthConfig.from_env(environ={"SMTP_PORT": str(port)}, env_file=env_file)
        auth = MindmeshAuth(config=config)
        try:
            auth.create_schema()
            auth.set_context(ip_address="203.0.113.7", user_agent="pytest")
            auth.auth.register("ada@example.com", "correct horse battery staple")
            auth.auth.login("ada@example.com", "correct horse battery staple")
        finally:
            auth.close()
    finally:
        controller.stop()
    assert len(received) == 1
    assert received[0]["Subject"] == "Your My App sign-in code"
    assert received[0]["To"] == "ada@example.com"
    assert (tmp_path / "auth.db").exists()
