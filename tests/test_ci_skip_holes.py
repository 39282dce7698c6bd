"""No skip holes under CI: what is missing locally skips, under CI it fails.

Proves ``tests/_ci.py`` in a real pytest subprocess, and guards the suite statically
so that nobody brings back ``pytest.importorskip`` or a bare skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _ci import in_ci, require, skip_or_fail

ROOT = Path(__file__).resolve().parents[1]  # the project: ``tests`` is importable from here
TESTS = ROOT / "tests"
MISSING = "a_module_that_does_not_exist_xyz"

MODULE_LEVEL = f"""
from tests._ci import require

require({MISSING!r})


def test_never_runs():
    raise AssertionError("collected although {MISSING} is missing")
"""

IN_TEST = f"""
from tests._ci import require


def test_needs_the_module():
    require({MISSING!r}, reason="the generated test needs it")
    raise AssertionError("ran although {MISSING} is missing")
"""


# A module-level skip leaves nothing collected from its file (pytest then exits 5, "no
# tests ran"), so every run also holds this passing file: exit 0 means "the rest ran".
COMPANION = """
def test_companion_passes():
    pass
"""


def run_pytest(tmp_path: Path, source: str, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this rootdir, none of the project's options
    (tmp_path / "test_generated.py").write_text(source)
    (tmp_path / "test_companion.py").write_text(COMPANION)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("source", [MODULE_LEVEL, IN_TEST], ids=["module-level", "in-test"])
@pytest.mark.parametrize("ci", ["1", "true"])
def test_a_missing_module_fails_the_run_under_ci(tmp_path: Path, source: str, ci: str) -> None:
    result = run_pytest(tmp_path, source, ci)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert MISSING in output, output
    assert "skipped" not in output, output
    assert "collected although" not in output and "ran although" not in output, output


@pytest.mark.parametrize("source", [MODULE_LEVEL, IN_TEST], ids=["module-level", "in-test"])
@pytest.mark.parametrize("ci", [None, "0"])  # every spelling: test_in_ci_reads_the_ci_variable
def test_a_missing_module_skips_outside_ci(tmp_path: Path, source: str, ci: str | None) -> None:
    result = run_pytest(tmp_path, source, ci)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"\b1 passed, 1 skipped\b", output), output
    assert MISSING in output, output  # the skip reason names the module


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        ("github-actions", True),
        ("", False),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("Off", False),
        (" ", False),
    ],
)
def test_in_ci_reads_the_ci_variable(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_in_ci_is_false_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert in_ci() is False


def test_skip_or_fail_fails_under_ci_and_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="the tool is missing"):
        skip_or_fail("the tool is missing")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="the tool is missing"):
        skip_or_fail("the tool is missing")


def test_require_returns_the_module() -> None:
    assert require("json") is sys.modules["json"]


# --------------------------------------------------------------------------- static guard

# Files allowed to skip directly, and why.
ALLOWED_TO_SKIP = {
    "tests/_ci.py": "the helper itself",
    "tests/contract/test_mongo.py": "real MongoDB binding: CI has no MongoDB server (mongomock runs the contract)",
}
SKIP_CALL = re.compile(r"importorskip\(|pytest\.skip\(|mark\.skip(if)?\b|\bskip\(")


def _test_sources() -> list[tuple[str, str]]:
    me = Path(__file__).resolve()
    return [
        (path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(TESTS.rglob("*.py"))
        if path.resolve() != me
    ]


def test_no_importorskip_left_in_the_tests() -> None:
    needle = "importorskip" + "("
    offenders = [name for name, text in _test_sources() if needle in text and name != "tests/_ci.py"]
    assert offenders == [], f"use _ci.require() instead of pytest.importorskip(): {offenders}"


def test_no_direct_skips_outside_the_allowed_files() -> None:
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name, text in _test_sources()
        if name not in ALLOWED_TO_SKIP
        for number, line in enumerate(text.splitlines(), 1)
        if SKIP_CALL.search(line)
    ]
    assert offenders == [], (
        "a skip here is a hole under CI: use _ci.require()/_ci.skip_or_fail(), "
        f"or add the file to ALLOWED_TO_SKIP with the reason: {offenders}"
    )


def test_the_static_guard_finds_the_test_files() -> None:
    names = {name for name, _ in _test_sources()}
    assert {"tests/_ci.py", "tests/_servers.py", "tests/unit/test_smtp_mailer.py", "tests/cli/test_cli.py"} <= names
