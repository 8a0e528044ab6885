"""``training`` and ``models_store`` stand without the service: no ``app``, no web stack.

Dependencies point one way (docs/design.md): the CLI and ``app`` use
``training`` and ``models_store``, never the reverse, so the offline package
installs and runs where FastAPI, Redis and the server's settings are absent.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_PACKAGES = ("training", "models_store")
#: What the offline packages must not need: the service and the web/cache/metrics stack.
SERVICE_ONLY = (
    "app",
    "fastapi",
    "starlette",
    "uvicorn",
    "redis",
    "prometheus_client",
    "pydantic_settings",
    "alembic",
    "typer",
)


def _modules() -> list[str]:
    """Every importable module of the offline packages (``__main__`` scripts excepted)."""
    names = []
    for package in OFFLINE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (lazy imports inside functions too)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_offline_module_imports_app() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in OFFLINE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "app" in _imported(path)
    ]
    assert _modules(), "found no modules to check"
    assert offenders == []


def test_offline_packages_import_with_the_service_stack_blocked() -> None:
    """Import every module in a fresh interpreter where ``import app`` (and co.) fails."""
    script = textwrap.dedent(
        f"""
        import importlib, sys

        BLOCKED = {SERVICE_ONLY!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked: {{name}} is not available offline")
                return None

        sys.meta_path.insert(0, Block())
        for name in {_modules()!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print("imported", len({_modules()!r}), "modules")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(_modules())} modules" in result.stdout
