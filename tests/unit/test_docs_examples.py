"""The examples in README.md and docs/ run as written (docs that cannot rot)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def runnable(block: str) -> bool:
    # Blocks that need the app's environment or a class body to bind are shown, not run.
    return "from_env()" not in block and "MyStore" not in block


@pytest.mark.parametrize("doc", ["README.md", "docs/testing.md", "docs/sql.md", "docs/integrations.md"])
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
