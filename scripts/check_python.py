#!/usr/bin/env python
"""Check kanseg's source on this Python without installing anything (the stdlib only; Python >= 3.10).

    python3.13 scripts/check_python.py

What it checks, on the interpreter that runs it:

1. every ``.py`` file of kanseg/, tests/, scripts/ and benchmarks/ compiles (syntax, f-string rules);
2. every import from the standard library resolves: the module exists and has the imported names
   (``from typing import Self`` or ``import tomllib`` fail on 3.10, ``import imp`` on 3.12);
3. every kanseg module imports, up to its first third-party package (torch, numpy, ...): those are not
   installed here, so a module stopping there is counted, anything else (a missing kanseg or stdlib name,
   a syntax or runtime error at import) fails.

It does not run the test suite: torch wheels are only installed for one Python (see README, "Python versions").
Exit code 0 when all is well, 1 otherwise, with one line per problem.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("kanseg", "tests", "scripts", "benchmarks")
# Standard-library modules this Python may not list: added in 3.11 (tomllib), removed in 3.12 and 3.13 (PEP 594...)
OTHER_STDLIB = {
    "tomllib", "distutils", "imp", "asynchat", "asyncore", "smtpd", "aifc", "audioop", "cgi", "cgitb", "chunk",
    "crypt", "imghdr", "lib2to3", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd",
    "sunau", "telnetlib", "uu", "xdrlib",
}
STDLIB = set(sys.stdlib_module_names) | OTHER_STDLIB


def stdlib_imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of the top-level-package imports from the standard library."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] in STDLIB]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in STDLIB and node.module != "__future__":
                found.append((node.module, [a.name for a in node.names if a.name != "*"], node.lineno))
    return found


def check_file(path: Path, problems: list[str]) -> int:
    """Compile ``path`` and resolve its stdlib imports; the number of imports checked."""
    where = path.relative_to(REPO)
    try:
        tree = compile(path.read_text(encoding="utf-8"), str(where), "exec", ast.PyCF_ONLY_AST)
        compile(tree, str(where), "exec")
    except SyntaxError as err:
        problems.append(f"{where}:{err.lineno}: syntax error on Python {sys.version.split()[0]}: {err.msg}")
        return 0
    imports = stdlib_imports(tree)
    for module, names, line in imports:
        try:
            loaded = importlib.import_module(module)
        except ImportError as err:
            problems.append(f"{where}:{line}: import {module}: {err}")
            continue
        for name in names:
            if not hasattr(loaded, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    problems.append(f"{where}:{line}: {module} has no {name!r} on Python {sys.version.split()[0]}")
    return len(imports)


def check_imports(problems: list[str]) -> tuple[int, int]:
    """Import every kanseg module; (modules imported fully, modules stopped by a missing third-party package)."""
    sys.path.insert(0, str(REPO))
    full = stopped = 0
    for path in sorted((REPO / "kanseg").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            importlib.import_module(module)
            full += 1
        except ModuleNotFoundError as err:
            top = (err.name or "").split(".")[0]
            if top and top != "kanseg" and top not in STDLIB:
                stopped += 1
            else:
                problems.append(f"{module}: {err}")
        except Exception as err:  # noqa: BLE001 - any other failure at import is a finding
            problems.append(f"{module}: {type(err).__name__}: {err}")
    return full, stopped


def main() -> int:
    problems: list[str] = []
    files = sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*.py"))
    n_imports = sum(check_file(path, problems) for path in files)
    full, stopped = check_imports(problems)
    for line in problems:
        print(line)
    version = sys.version.split()[0]
    print(f"Python {version}: {len(files)} files compile, {n_imports} standard-library imports checked, "
          f"{full} kanseg modules import fully, {stopped} stop at a third-party package not installed here; "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
