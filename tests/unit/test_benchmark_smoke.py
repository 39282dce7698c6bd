"""The benchmark script keeps working (its figures are reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--backends",
            "memory,sqlite",
            "--skip-scale",
            "--skip-concurrency",
            "--bcrypt-rounds",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "get_user_from_token" in proc.stdout and "bcrypt cost 4" in proc.stdout
    report = json.loads(out.read_text())
    assert report["bcrypt_rounds"] == 4
    assert set(report["operations"]) == {"memory", "sqlite"}
    assert "ratio_get_user_to_floor" in report["operations"]["sqlite"]["floor"]
    for op in ("register", "login", "verify_otp", "refresh", "otp_send", "otp_verify", "rate_limit_check", "request_reset"):
        assert report["operations"]["memory"][op]["n"] > 0
