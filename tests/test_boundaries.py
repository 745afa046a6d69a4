"""The library (``fastfix``) stands alone: it never imports its services (``server``).

The services add their subcommands to the ``fastfix`` script when they are
installed; without them the library imports, and the script offers its own
commands and says why the others are missing.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import fastfix

LIBRARY = Path(fastfix.__file__).resolve().parent

# Makes ``import server`` (and anything below it) fail, as when only the library is installed.
BLOCKER = '''
import sys

class _NoServices:
    def find_spec(self, name, path=None, target=None):
        if name == "server" or name.startswith("server."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoServices())
'''


def _without_services(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` where ``server`` cannot be imported (a sitecustomize blocks it)."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(LIBRARY.parent)])}
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def _script() -> list[str]:
    """The installed ``fastfix`` console script (else the module it runs)."""
    script = Path(sys.executable).parent / "fastfix"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fastfix.cli"]


def _library_modules() -> list[str]:
    """Every module of the library: its .py files and its compiled extensions."""
    names = set()
    for path in LIBRARY.rglob("*"):
        if path.suffix in (".py", ".so", ".pyd") and "__pycache__" not in path.parts:
            rel = path.relative_to(LIBRARY.parent).with_suffix("")
            names.add(".".join(rel.parts).split(".cpython")[0].split(".cp3")[0])
    return sorted(n for n in names if not n.endswith("__main__"))


def test_library_sources_do_not_import_the_services() -> None:
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")) + sorted(LIBRARY.rglob("*.pyi")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.name}: {n}" for n in names if n == "server" or n.startswith("server.")]
    cython_import = re.compile(r"^\s*(?:from|c?import)\s+server(?:\.|\s|$)", re.M)
    for path in sorted(LIBRARY.rglob("*.pyx")) + sorted(LIBRARY.rglob("*.pxd")):
        if cython_import.search(path.read_text(encoding="utf-8")):
            offenders.append(path.name)
    assert offenders == []


def test_library_imports_and_runs_without_the_services(tmp_path: Path) -> None:
    blocked = _without_services(tmp_path, sys.executable, "-c", "import server")
    assert blocked.returncode != 0 and "No module named 'server'" in blocked.stderr

    modules = _library_modules()
    assert {"fastfix.codec", "fastfix.session", "fastfix.cli", "fastfix._codec"} <= set(modules)
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\nprint('ok')"
    out = _without_services(tmp_path, sys.executable, "-c",
                            "import fastfix, fastfix.codec, fastfix.session, fastfix.cli\n" + code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

    help_ = _without_services(tmp_path, *_script(), "--help")
    assert help_.returncode == 0, help_.stderr
    for command in ("version", "acceptance", "dictionary"):
        assert re.search(rf"^\s+{command}\b", help_.stdout, re.M), help_.stdout
    assert not re.search(r"^\s+gateway\b", help_.stdout, re.M)
    assert "services are not installed" in " ".join(help_.stdout.split())

    version = _without_services(tmp_path, *_script(), "version")
    assert version.returncode == 0 and version.stdout.strip() == fastfix.__version__

    gateway = _without_services(tmp_path, *_script(), "gateway", "--config", "gateway.toml")
    assert gateway.returncode == 2 and "invalid choice: 'gateway'" in gateway.stderr
    assert "Traceback" not in gateway.stderr


def test_script_has_every_command_with_the_services() -> None:
    out = subprocess.run([*_script(), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for command in ("version", "acceptance", "dictionary", "demo", "gateway", "exchange", "hub", "broker"):
        assert re.search(rf"^\s+{command}\b", out.stdout, re.M), out.stdout
    assert "not installed" not in out.stdout

