"""The project code a module runs: its static import closure, for DVC deps and training keys.

A stage's ``deps`` in ``dvc.yaml`` must be exactly the code its command runs, or an edit leaves a
stale output behind a clean ``dvc status`` (the worst bug a DVC pipeline can have). Listing them by
hand drifts as soon as a module gains an import, so they are computed here from the source:
``tools/stage_deps.py`` writes and checks ``dvc.yaml`` with :func:`import_closure`, and the train
stage's training key hashes :func:`code_files`, so both see the same code.

How the closure is found (statically: nothing is imported, so it is cheap and has no side effects):

- Every ``import a.b``, ``from a.b import c`` and relative ``from .x import y`` anywhere in a file
  counts, at module level and inside functions, classes, ``try`` and ``if`` blocks alike: code
  imported lazily still runs. Only the body of ``if TYPE_CHECKING:`` is skipped (it never runs).
- ``import a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too, so they are included.
- ``from pkg import name`` includes ``pkg/name.py`` (or ``pkg/name/__init__.py``) when that
  submodule exists; otherwise ``name`` is an attribute of ``pkg``, already included.
- A module is project code when it resolves to a file under the project root (a top-level
  ``name.py`` or a regular package ``name/__init__.py``); everything else (the standard library,
  third-party packages) is ignored.
- Imports by string (``importlib.import_module(name)``, ``pkgutil`` discovery) are invisible to
  ``ast``. A module that discovers the members of its package that way declares it with the
  module-level marker ``DISCOVERS_SUBMODULES = True``: the closure of any module that reaches it
  then includes every direct submodule and subpackage of that package (what
  ``pkgutil.iter_modules(package.__path__)`` lists), and their own imports. A module that calls
  ``pkgutil.iter_modules`` or ``walk_packages`` without the marker is reported by
  :func:`undeclared_discovery` (and fails ``tools/stage_deps.py --check``), so it is not forgotten.

Cycles are fine (every module is visited once). Paths are repo-relative POSIX strings, sorted.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DISCOVERY_MARKER",
    "ROOT",
    "ModuleScan",
    "code_files",
    "import_closure",
    "imported_modules",
    "module_path",
    "undeclared_discovery",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
"""The project root: the folder holding ``deepfake_audio/``, ``stages/`` and ``dvc.yaml``."""

DISCOVERY_MARKER = "DISCOVERS_SUBMODULES"
"""Module-level name that, set to ``True``, makes the closure include all of the package's submodules."""

_PKGUTIL_DISCOVERY = frozenset({"iter_modules", "walk_packages"})


class ModuleScan(NamedTuple):
    """What one file's source says about the code it runs.

    Attributes:
        imports: absolute dotted names its imports may run (project or not), with every parent
            package and, for ``from pkg import name``, the candidate submodule ``pkg.name``.
        discovers_submodules: it sets ``DISCOVERS_SUBMODULES = True`` at module level.
        uses_pkgutil: it refers to ``pkgutil.iter_modules`` or ``pkgutil.walk_packages``.
    """

    imports: frozenset[str]
    discovers_submodules: bool
    uses_pkgutil: bool


def module_path(module: str, *, root: Path = ROOT) -> Path | None:
    """The file under ``root`` that runs for ``module`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``).

    ``None`` when ``module`` is not project code (standard library, third party, or absent).
    """
    if not module or any(not part.isidentifier() for part in module.split(".")):
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST):
    """``ast.walk`` that skips the body (not the ``else``) of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            stack.append(node.test)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _discovers_submodules(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == DISCOVERY_MARKER for t in targets):
            return isinstance(value, ast.Constant) and value.value is True
    return False


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts) - 1 or not parts:
        return None  # beyond the top-level package: Python raises ImportError, nothing runs
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(path: Path, module: str) -> ModuleScan:
    """Scan a file: the modules its import statements may run, and how it discovers others.

    Args:
        path: the source file.
        module: its dotted name (``pkg.mod``, or ``pkg`` for ``pkg/__init__.py``), for relative imports.
    """
    tree = ast.parse(path.read_bytes(), filename=str(path))
    names: set[str] = set()
    uses_pkgutil = False
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = (
                node.module
                if node.level == 0
                else _resolve_relative(module, _is_package(path), node.level, node.module)
            )
            if base is None:
                continue
            names.update(_with_parents(base))
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
            uses_pkgutil |= base == "pkgutil" and any(a.name in _PKGUTIL_DISCOVERY for a in node.names)
        elif isinstance(node, ast.Attribute) and node.attr in _PKGUTIL_DISCOVERY:
            uses_pkgutil |= isinstance(node.value, ast.Name) and node.value.id == "pkgutil"
    return ModuleScan(frozenset(names), _discovers_submodules(tree), uses_pkgutil)


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _submodules(package_init: Path, root: Path) -> list[str]:
    """Direct submodules and subpackages of the package whose ``__init__.py`` is given."""
    folder = package_init.parent
    package = _module_name(package_init, root)
    out = [f"{package}.{p.stem}" for p in folder.glob("*.py") if p.name != "__init__.py" and p.stem.isidentifier()]
    out += [
        f"{package}.{d.name}"
        for d in folder.iterdir()
        if d.is_dir() and (d / "__init__.py").is_file() and d.name.isidentifier()
    ]
    return sorted(out)


def _scan_closure(module: str, root: Path) -> dict[Path, ModuleScan]:
    """Every project file ``module`` may run, with its scan."""
    if module_path(module, root=root) is None:
        raise ValueError(f"module {module!r} is not project code under {root} (no .py file or package for it)")
    seen: dict[str, Path] = {}
    scans: dict[Path, ModuleScan] = {}
    todo = _with_parents(module)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_path(name, root=root)
        if path is None:
            continue
        seen[name] = path
        scans[path] = scan = imported_modules(path, name)
        todo.extend(n for n in scan.imports if n not in seen)
        if scan.discovers_submodules:
            package_init = path if _is_package(path) else path.parent / "__init__.py"
            if package_init.is_file():
                todo.append(_module_name(package_init, root))
                todo.extend(_submodules(package_init, root))
    return scans


def import_closure(module: str, *, root: Path = ROOT) -> list[str]:
    """The project files that running ``module`` (as ``python -m module``) may execute.

    Args:
        module: a dotted module name under ``root``, e.g. ``stages.train``.
        root: the project root; only files under it are followed and returned.

    Returns:
        Sorted repo-relative POSIX paths, e.g. ``["deepfake_audio/__init__.py", ...,
        "stages/train.py"]``, including ``module``'s own file and every package ``__init__.py`` on the way.

    Raises:
        ValueError: ``module`` is not a module under ``root``.
    """
    root = Path(root).resolve()
    files = sorted(p.relative_to(root).as_posix() for p in _scan_closure(module, root))
    log.debug("%s runs %d project files", module, len(files))
    return files


def undeclared_discovery(module: str, *, root: Path = ROOT) -> list[str]:
    """Files of ``module``'s closure that call pkgutil discovery but lack ``DISCOVERS_SUBMODULES = True``.

    What such a file imports by name is invisible to the closure; an empty list is the only good answer.
    """
    root = Path(root).resolve()
    return sorted(
        p.relative_to(root).as_posix()
        for p, scan in _scan_closure(module, root).items()
        if scan.uses_pkgutil and not scan.discovers_submodules
    )


def code_files(module: str, *, root: Path = ROOT) -> list[Path]:
    """The files of :func:`import_closure` as absolute paths, sorted: what a code hash must read."""
    root = Path(root).resolve()
    return [root / rel for rel in import_closure(module, root=root)]
