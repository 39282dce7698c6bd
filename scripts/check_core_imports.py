"""Fails if mindmesh_auth/core imports anything but attrs, bcrypt, jwt, the standard library
or the core itself (python-dotenv is read lazily by AuthConfig.from_env only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOWED_THIRD_PARTY = {"attrs", "bcrypt", "jwt"}
LAZY_EXCEPTIONS = {("config.py", "dotenv")}
CORE = Path(__file__).resolve().parent.parent / "mindmesh_auth" / "core"


def main() -> int:
    problems = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside core only
                    if node.level > 1:
                        problems.append(f"{path.name}:{node.lineno}: relative import leaves core")
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "__future__":
                    continue
                if name.startswith("mindmesh_auth.core"):
                    continue
                if (path.name, top) in LAZY_EXCEPTIONS:
                    continue
                problems.append(f"{path.relative_to(CORE.parent.parent)}:{node.lineno}: imports {name}")
    if problems:
        print("core/ must import only attrs, bcrypt, jwt and the standard library:")
        print("\n".join(problems))
        return 1
    print("core imports: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
