"""Mutation score of mindmesh_auth/core per module, from the results mutmut left in mutants/.

Run by ./scripts/mutation after ``mutmut run``. A mutant counts as killed when a
test failed on it (or it timed out: an endless loop is noticed). Mutants listed in
scripts/mutation-equivalent.txt (each with the reason it cannot change
behaviour) are left out of the denominator. Exit status 1 when the
security-critical modules are under 95% or the core under 90%.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
META_DIR = ROOT / "mutants" / "mindmesh_auth" / "core"
EQUIVALENT_FILE = ROOT / "scripts" / "mutation-equivalent.txt"

SECURITY_CRITICAL = ("login", "otp", "password_reset", "passwords", "tokens", "rate_limit", "crypto")
SECURITY_TARGET = 95.0
CORE_TARGET = 90.0

# mutmut's exit codes (mutmut/stats.py): 1 and 3 a test failed, 36/24/-24/152/255 timeout,
# 37 caught by the type check, 0 survived, 5/33 no test reached it, None not run yet.
_KILLED = {1, 3, 37}
_TIMEOUT = {36, 24, -24, 152, 255}
_SURVIVED = {0}
_NO_TESTS = {5, 33}


def load_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """``mutant name -> reason`` from lines ``name  # reason`` (blank lines and ``#`` lines ignored)."""
    found: dict[str, str] = {}
    if not path.exists():
        return found
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        found[name.strip()] = reason.strip()
    return found


def classify(code: int | None) -> str:
    if code is None:
        return "not_run"
    if code in _KILLED:
        return "killed"
    if code in _TIMEOUT:
        return "timeout"
    if code in _SURVIVED:
        return "survived"
    if code in _NO_TESTS:
        return "no_tests"
    return "suspicious"


def collect(meta_dir: Path = META_DIR) -> dict[str, dict[str, str]]:
    """``module -> {mutant name -> status}`` for every mutated core module."""
    modules: dict[str, dict[str, str]] = {}
    for meta in sorted(meta_dir.glob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        codes = data.get("exit_code_by_key", {})
        if codes:
            modules[meta.name.removesuffix(".py.meta")] = {name: classify(code) for name, code in codes.items()}
    return modules


def score(statuses: dict[str, str], equivalent: dict[str, str]) -> tuple[int, int, int]:
    """(detected, counted, equivalent) where counted excludes the listed equivalent mutants."""
    detected = counted = eq = 0
    for name, status in statuses.items():
        if name in equivalent:
            eq += 1
            continue
        counted += 1
        if status in ("killed", "timeout"):
            detected += 1
    return detected, counted, eq


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--survivors", action="store_true", help="list every surviving, non-equivalent mutant")
    args = parser.parse_args(argv)

    modules = collect()
    if not modules:
        print("no mutation results in mutants/: run ./scripts/mutation first", file=sys.stderr)
        return 2
    equivalent = load_equivalent()
    known = {name for statuses in modules.values() for name in statuses}
    stale = sorted(set(equivalent) - known)

    totals: Counter[str] = Counter()
    security: Counter[str] = Counter()
    not_run = 0
    print(f"{'module':<14}{'mutants':>9}{'killed':>9}{'survived':>10}{'no test':>9}{'equiv.':>8}{'score':>9}")
    for module, statuses in modules.items():
        counts = Counter(statuses.values())
        not_run += counts["not_run"]
        detected, counted, eq = score(statuses, equivalent)
        pct = 100.0 * detected / counted if counted else 100.0
        mark = " *" if module in SECURITY_CRITICAL else ""
        print(
            f"{module:<14}{len(statuses):>9}{counts['killed'] + counts['timeout']:>9}{counts['survived']:>10}"
            f"{counts['no_tests']:>9}{eq:>8}{pct:>8.1f}%{mark}"
        )
        totals.update(detected=detected, counted=counted)
        if module in SECURITY_CRITICAL:
            security.update(detected=detected, counted=counted)

    core_pct = 100.0 * totals["detected"] / max(1, totals["counted"])
    sec_pct = 100.0 * security["detected"] / max(1, security["counted"])
    print()
    sec_n, core_n = security["counted"], totals["counted"]
    print(f"security-critical (*): {sec_pct:.1f}% of {sec_n} non-equivalent mutants (target {SECURITY_TARGET:.0f}%)")
    print(f"core overall:          {core_pct:.1f}% of {core_n} non-equivalent mutants (target {CORE_TARGET:.0f}%)")
    print(f"equivalent (excluded): {len(equivalent) - len(stale)} listed in {EQUIVALENT_FILE.relative_to(ROOT)}")
    if stale:
        print(f"warning: {len(stale)} listed equivalent mutants no longer exist (their function changed):")
        for name in stale:
            print(f"  {name}")
    if not_run:
        print(f"warning: {not_run} mutants were not run")

    if args.survivors:
        print()
        for statuses in modules.values():
            for name, status in statuses.items():
                if status in ("survived", "no_tests", "suspicious", "not_run") and name not in equivalent:
                    print(f"{status:<10} {name}")

    ok = sec_pct >= SECURITY_TARGET and core_pct >= CORE_TARGET and not not_run
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
