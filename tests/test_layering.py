"""The layering: ``audit`` builds on ``eventbus``; the bus library never imports ``audit``.

Only the entry points that assemble the whole system import it, lazily, when a feature that
needs it is used: the command line (``eventbus._cli``), the pytest plugin's ``audit_trail``
fixture and the schema generator's ``audit_entry`` file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EVENTBUS = Path(__file__).parent.parent / "eventbus"
LAZY_IMPORTERS = {"_cli.py", "_pytest_plugin.py", "schema.py"}


def _imports_of_audit(tree: ast.AST) -> list[tuple[int, bool]]:
    """(line, at module level) of every import of audit, skipping ``if TYPE_CHECKING:``."""
    found: list[tuple[int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if (
                isinstance(child, ast.Import)
                and any(a.name.split(".")[0] == "audit" for a in child.names)
            ) or (
                isinstance(child, ast.ImportFrom) and (child.module or "").split(".")[0] == "audit"
            ):
                found.append((child.lineno, top))
            if isinstance(child, ast.Constant) and child.value == "audit:AuditEntry":
                found.append((child.lineno, top))
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, top and not nested)

    visit(tree, True)
    return found


def test_no_eventbus_module_imports_audit_at_import_time() -> None:
    for path in EVENTBUS.rglob("*.py"):
        imports = _imports_of_audit(ast.parse(path.read_text(), str(path)))
        at_top = [line for line, top in imports if top and path.name not in LAZY_IMPORTERS]
        assert not at_top, f"{path} imports audit at lines {at_top}"
        if path.name not in LAZY_IMPORTERS:
            assert not imports, f"{path} imports audit (lines {[i[0] for i in imports]})"


def test_importing_every_eventbus_module_leaves_audit_unimported() -> None:
    modules = sorted(
        "eventbus."
        + ".".join(p.relative_to(EVENTBUS).with_suffix("").parts).replace(".__init__", "")
        for p in EVENTBUS.rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name.removesuffix('.__init__'))\n"
        "    except ImportError as exc:\n"
        "        if 'nats' not in str(exc): raise\n"
        "print('audit' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
