"""The import structure of slicebox/ (README "Layout"): one-way imports, no circles.

Every module's imports are read with ``ast``, at module level AND inside
functions (an import inside a function still forms a circle, it only hides it
until run time).  The test fails on:

- any circle among slicebox modules;
- an import of a slicebox module inside a function, except in the application
  factory, the CLI and the back-end selectors (storage kind, numba or numpy);
- an import against the layering (e.g. ``slicebox/dicom/`` importing db,
  services, storage or api; services importing api).
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "slicebox"

#: (module, function) pairs allowed to import slicebox modules inside a function.
ALLOWED_FUNCTION_IMPORTS = {
    ("slicebox", "create_app"),  # the application factory
    ("slicebox.cli", "*"),  # the command line: import only what a command needs
    ("slicebox.storage", "open_storage"),  # storage kind
    ("slicebox.imaging.window", "warm_up"),  # numba or numpy
}

#: Areas (the part after ``slicebox.``) and the areas they must never import.
FORBIDDEN = {
    "dicom": {"api", "services", "db", "storage", "jobs", "net", "imaging"},
    "imaging": {"api", "services", "db", "storage", "jobs", "net"},
    "db": {"api", "services", "storage", "jobs", "net", "dicom", "imaging"},
    "storage": {"api", "services", "db", "jobs", "net", "dicom", "imaging"},
    "net": {"api", "jobs"},
    "services": {"api", "jobs"},
    "models": {"api", "services", "db", "storage", "jobs", "net", "dicom", "imaging"},
    "errors": {"api", "services", "db", "storage", "jobs", "net", "dicom", "imaging", "models"},
    "clock": {"api", "services", "db", "storage", "jobs", "net", "dicom", "imaging", "models"},
    # the `slicebox import` client speaks HTTP only: none of the server's modules
    "importer": {"api", "services", "db", "storage", "jobs", "net", "dicom", "imaging", "models", "context",
                 "config"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The slicebox module an imported name lives in (``slicebox.db.rows.row_to_image`` -> ``slicebox.db.rows``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


class _Imports(ast.NodeVisitor):
    """(target module, enclosing function or None, line) for every import of a slicebox module."""

    def __init__(self, module: str, is_package: bool):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.functions: list[str] = []
        self.found: list[tuple[str, str | None, int]] = []

    def _add(self, name: str, line: int) -> None:
        target = _resolve(name)
        if target is not None and target != self.module:
            self.found.append((target, self.functions[0] if self.functions else None, line))

    def visit_FunctionDef(self, node):
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            if alias.name == "slicebox" or alias.name.startswith("slicebox."):
                self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module != "slicebox" and not module.startswith("slicebox."):
            return
        for alias in node.names:
            # ``from slicebox.db import rows`` imports a module; ``from slicebox.db import Connection`` a name.
            self._add(f"{module}.{alias.name}", node.lineno)


def _imports() -> dict[str, list[tuple[str, str | None, int]]]:
    result = {}
    for module, path in MODULES.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        result[module] = visitor.found
    return result


IMPORTS = _imports()


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_walk_sees_the_modules_and_their_imports():
    # A walk that found nothing would pass every check below.
    assert len(MODULES) > 40
    assert ("slicebox.services.reidentification", None) in {(t, f) for t, f, _ in IMPORTS["slicebox.services.ingest"]}
    assert any(f == "create_app" for _, f, _ in IMPORTS["slicebox"])


def test_no_import_circles():
    graph = {m: sorted({t for t, _, _ in found}) for m, found in IMPORTS.items()}
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module)
    assert cycles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_slicebox_modules_are_imported_at_module_level():
    bad = [f"{m}:{line} imports {t} inside {f}()"
           for m, found in IMPORTS.items() for t, f, line in found
           if f is not None and (m, f) not in ALLOWED_FUNCTION_IMPORTS and (m, "*") not in ALLOWED_FUNCTION_IMPORTS]
    assert bad == []


@pytest.mark.parametrize("area", sorted(FORBIDDEN))
def test_imports_point_one_way(area):
    bad = [f"{m}:{line} imports {t}"
           for m, found in IMPORTS.items() if _area(m) == area
           for t, _, line in found if _area(t) in FORBIDDEN[area]]
    assert bad == []


def test_the_checks_catch_a_circle_and_a_hidden_import():
    # The same visitor on made-up source: a function-level import is seen and attributed.
    visitor = _Imports("slicebox.dicom.parsing", False)
    visitor.visit(ast.parse("def f():\n    from slicebox.services import ingest\n"
                            "from . import tagstream\n"))
    assert ("slicebox.services.ingest", "f", 2) in visitor.found
    assert ("slicebox.dicom.tagstream", None, 3) in visitor.found
