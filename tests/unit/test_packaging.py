"""The distributions: LICENSE and docs in the sdist and the wheel, SPDX license metadata,
dependency floors above the versions with known advisories."""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from _ci import require  # type: ignore[import-not-found]  # noqa: E402

DOCS = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "mutants", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", "*.db", "*.db-*", ".env", "results",
)  # fmt: skip


def _pyproject() -> dict:  # type: ignore[type-arg]
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _extra(name: str) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in _pyproject()["project"]["optional-dependencies"][name]]
    return {canonicalize_name(r.name): r for r in reqs}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """sdist, then the wheel built from that sdist (so a file missing from the sdist is missing from the wheel)."""
    require("build")
    base = tmp_path_factory.mktemp("dist")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)  # never write build files into the working tree
    out = base / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel, proc.stdout + proc.stderr


@pytest.mark.slow
def test_sdist_has_license_docs_and_spdx_metadata(dists: tuple[Path, Path, str]) -> None:
    sdist, _wheel, _log = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        top = sdist.name.removesuffix(".tar.gz")
        license_text = tar.extractfile(f"{top}/LICENSE").read().decode()  # type: ignore[union-attr]
        pkg_info = email.message_from_bytes(tar.extractfile(f"{top}/PKG-INFO").read(), policy=email.policy.compat32)  # type: ignore[union-attr]
    assert "MIT License" in license_text and "mindmesh-auth developers" in license_text
    for doc in DOCS:
        assert f"docs/{doc}" in names
    assert {"README.md", "CHANGELOG.md", "SECURITY.md", "mindmesh_auth/py.typed"} <= names
    assert pkg_info["License-Expression"] == "MIT"
    assert pkg_info["License"] is None  # the deprecated free-text field
    assert pkg_info.get_all("License-File") == ["LICENSE"]


@pytest.mark.slow
def test_wheel_has_license_docs_and_spdx_metadata(dists: tuple[Path, Path, str]) -> None:
    _sdist, wheel, _log = dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (dist_info,) = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        (data,) = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".data")}
        license_text = zf.read(f"{dist_info}/licenses/LICENSE").decode()
        metadata = email.message_from_bytes(zf.read(f"{dist_info}/METADATA"), policy=email.policy.compat32)
    assert "MIT License" in license_text
    doc_dir = f"{data}/data/share/doc/mindmesh-auth"
    for doc in DOCS:
        assert f"{doc_dir}/docs/{doc}" in names
    assert f"{doc_dir}/README.md" in names and f"{doc_dir}/CHANGELOG.md" in names
    assert "mindmesh_auth/py.typed" in names
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License"] is None
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)  # no stray top-level packages


@pytest.mark.slow
def test_build_gives_no_license_deprecation_warning(dists: tuple[Path, Path, str]) -> None:
    _sdist, _wheel, log = dists
    assert "`project.license` as a TOML table is deprecated" not in log
    assert "License classifiers are deprecated" not in log


@pytest.mark.parametrize(
    ("extra", "package", "vulnerable", "fixed"),
    [
        ("mongo", "pymongo", ["4.6.0", "4.6.2"], "4.6.3"),
        ("mysql", "pymysql", ["1.1.0"], "1.1.1"),
        ("flask", "flask", ["3.0.0", "3.1.0"], "3.1.1"),
        ("flask", "werkzeug", ["3.0.0", "3.0.6", "3.1.5"], "3.1.6"),
        ("fastapi", "starlette", ["0.36.3", "0.47.1", "0.49.0", "1.0.0"], "1.0.1"),
        ("fastapi", "fastapi", ["0.110.0", "0.132.0"], "0.133.0"),
        ("smtp", "emails", ["0.6"], "1.0"),
    ],
)
def test_dependency_floors_exclude_versions_with_advisories(extra: str, package: str, vulnerable: list[str], fixed: str) -> None:
    requirement = _extra(extra)[package]
    for version in vulnerable:
        assert not requirement.specifier.contains(version), f"{package} {version} is allowed by [{extra}]"
    assert requirement.specifier.contains(fixed)


def test_postgres_extras_offer_built_and_binary_psycopg2() -> None:
    assert set(_extra("postgres")) == {"peewee", "psycopg2"}
    assert set(_extra("postgres-binary")) == {"peewee", "psycopg2-binary"}
    # `all` (and so `dev`) installs without a compiler or libpq headers.
    (all_req,) = _extra("all").values()
    assert "postgres-binary" in all_req.extras and "postgres" not in all_req.extras


def test_build_backend_supports_spdx_license() -> None:
    data = _pyproject()
    assert data["project"]["license"] == "MIT"
    assert data["project"]["license-files"] == ["LICENSE"]
    (setuptools_req,) = [Requirement(r) for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools_req.specifier.contains("76.1") and setuptools_req.specifier.contains("77.0.0")
