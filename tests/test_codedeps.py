"""Tests for deepfake_audio.codedeps: the static import closure, on tiny fake projects in tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deepfake_audio.codedeps import ROOT, code_files, import_closure, module_path, undeclared_discovery


def make_project(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (repo-relative path -> source, dedented) under ``root``."""
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def test_relative_imports_resolve_from_the_importing_module(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import f\n",
            "pkg/b.py": "from . import c\nf = 1\n",
            "pkg/c.py": "from .sub.d import g\n",
            "pkg/sub/__init__.py": "from .d import g\n",
            "pkg/sub/d.py": "from ..e import h\ng = 1\n",
            "pkg/e.py": "h = 1\n",
            "pkg/unused.py": "",
        },
    )
    assert import_closure("pkg.a", root=tmp_path) == [
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/b.py",
        "pkg/c.py",
        "pkg/e.py",
        "pkg/sub/__init__.py",
        "pkg/sub/d.py",
    ]


def test_relative_import_in_a_package_init_is_relative_to_that_package(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from . import x\nfrom .. import y\n",
            "pkg/sub/x.py": "",
            "pkg/y.py": "",
            "pkg/sub/y.py": "",  # not the `y` of `from .. import y`
        },
    )
    assert import_closure("pkg.sub", root=tmp_path) == [
        "pkg/__init__.py",
        "pkg/sub/__init__.py",
        "pkg/sub/x.py",
        "pkg/y.py",
    ]


def test_imports_inside_functions_classes_and_try_blocks_count(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/main.py": """
            def run():
                import pkg.lazy
                return pkg.lazy

            class Thing:
                def method(self):
                    from pkg import in_method

            try:
                from pkg.optional import x
            except ImportError:
                x = None
            """,
            "pkg/lazy.py": "",
            "pkg/in_method.py": "",
            "pkg/optional.py": "x = 1\n",
            "pkg/never.py": "",
        },
    )
    assert import_closure("pkg.main", root=tmp_path) == [
        "pkg/__init__.py",
        "pkg/in_method.py",
        "pkg/lazy.py",
        "pkg/main.py",
        "pkg/optional.py",
    ]


def test_from_package_import_name_takes_the_submodule_only_when_it_exists(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "CONSTANT = 1\ndef helper(): ...\n",
            "pkg/main.py": "from pkg import CONSTANT, helper, mod, subpkg\n",
            "pkg/mod.py": "",
            "pkg/subpkg/__init__.py": "",
            "pkg/subpkg/inner.py": "",  # not imported by anyone
            "pkg/other.py": "",
        },
    )
    assert import_closure("pkg.main", root=tmp_path) == [
        "pkg/__init__.py",
        "pkg/main.py",
        "pkg/mod.py",
        "pkg/subpkg/__init__.py",
    ]


def test_dotted_import_runs_every_parent_package_init(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "app.py": "import pkg.a.b\n",
            "pkg/__init__.py": "",
            "pkg/a/__init__.py": "",
            "pkg/a/b.py": "",
        },
    )
    assert import_closure("app", root=tmp_path) == ["app.py", "pkg/__init__.py", "pkg/a/__init__.py", "pkg/a/b.py"]


def test_third_party_and_stdlib_imports_are_ignored(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/main.py": """
            import os.path
            import numpy as np
            from collections import abc
            from torch.nn import functional
            from pkg import local
            """,
            "pkg/local.py": "import json\n",
        },
    )
    assert import_closure("pkg.main", root=tmp_path) == ["pkg/__init__.py", "pkg/local.py", "pkg/main.py"]


def test_import_cycles_terminate(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "import pkg.a\nfrom . import c\n",
            "pkg/c.py": "from .a import *\n",
        },
    )
    assert import_closure("pkg.b", root=tmp_path) == ["pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py"]


def test_discovery_marker_includes_every_submodule_of_the_package(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "app.py": "from registry import get\n",
            "registry/__init__.py": """
            import importlib
            import pkgutil

            DISCOVERS_SUBMODULES = True

            def get(name):
                for info in pkgutil.iter_modules(__path__):
                    importlib.import_module(f"{__name__}.{info.name}")
            """,
            "registry/xgb.py": "from helpers import util\n",
            "registry/neural/__init__.py": "",
            "registry/neural/deep.py": "",  # not a direct member: pkgutil.iter_modules does not list it
            "helpers/__init__.py": "",
            "helpers/util.py": "",
            "helpers/unused.py": "",
        },
    )
    assert import_closure("app", root=tmp_path) == [
        "app.py",
        "helpers/__init__.py",
        "helpers/util.py",
        "registry/__init__.py",
        "registry/neural/__init__.py",
        "registry/xgb.py",
    ]


def test_discovery_marker_in_a_submodule_discovers_its_own_package(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "app.py": "from models.loader import load\n",
            "models/__init__.py": "",
            "models/loader.py": "DISCOVERS_SUBMODULES: bool = True\ndef load(): ...\n",
            "models/a.py": "",
            "models/b.py": "",
        },
    )
    assert import_closure("app", root=tmp_path) == [
        "app.py",
        "models/__init__.py",
        "models/a.py",
        "models/b.py",
        "models/loader.py",
    ]


@pytest.mark.parametrize(
    "marker",
    [
        "DISCOVERS_SUBMODULES = False",
        "DISCOVERS_SUBMODULES = 'yes'",
        "def f():\n    DISCOVERS_SUBMODULES = True",
        "DISCOVERED = True",
    ],
)
def test_only_a_module_level_true_marker_discovers(tmp_path: Path, marker: str) -> None:
    make_project(
        tmp_path, {"app.py": "import registry\n", "registry/__init__.py": marker + "\n", "registry/member.py": ""}
    )
    assert import_closure("app", root=tmp_path) == ["app.py", "registry/__init__.py"]


def test_type_checking_only_imports_are_skipped_but_their_else_branch_counts(tmp_path: Path) -> None:
    make_project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/main.py": """
            import typing
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from pkg.heavy import Model
            else:
                from pkg.light import Model
            if typing.TYPE_CHECKING:
                import pkg.heavier
            """,
            "pkg/heavy.py": "",
            "pkg/heavier.py": "",
            "pkg/light.py": "",
        },
    )
    assert import_closure("pkg.main", root=tmp_path) == ["pkg/__init__.py", "pkg/light.py", "pkg/main.py"]


def test_unknown_module_raises_and_code_files_are_absolute(tmp_path: Path) -> None:
    make_project(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n", "pkg/b.py": ""})
    with pytest.raises(ValueError, match="pkg.missing"):
        import_closure("pkg.missing", root=tmp_path)
    with pytest.raises(ValueError, match="numpy"):
        import_closure("numpy", root=tmp_path)
    files = code_files("pkg.a", root=tmp_path)
    assert files == [tmp_path.resolve() / p for p in ("pkg/__init__.py", "pkg/a.py", "pkg/b.py")]
    assert all(f.is_file() for f in files)


def test_a_package_wins_over_a_module_of_the_same_name(tmp_path: Path) -> None:
    make_project(tmp_path, {"thing.py": "", "thing/__init__.py": ""})  # as Python's own import system
    assert module_path("thing", root=tmp_path) == tmp_path / "thing" / "__init__.py"
    assert module_path("thing.nope", root=tmp_path) is None and module_path("1bad", root=tmp_path) is None


def test_real_train_stage_closure_holds_what_it_calls() -> None:
    """The train stage calls compute_eer, read_frames and the model registry without listing them by hand."""
    import inspect

    from deepfake_audio.features import read_frames
    from deepfake_audio.metrics import compute_eer
    from deepfake_audio.models import get_model_kind

    closure = import_closure("stages.train")
    for function in (compute_eer, read_frames, get_model_kind):
        assert Path(inspect.getsourcefile(function)).resolve().relative_to(ROOT).as_posix() in closure
    assert "stages/train.py" in closure and not any(p.startswith(("tests/", "tools/")) for p in closure)


@pytest.mark.parametrize(
    "discovery", ["import pkgutil\nfor m in pkgutil.iter_modules(__path__): ...", "from pkgutil import walk_packages\n"]
)
def test_pkgutil_discovery_without_the_marker_is_reported(tmp_path: Path, discovery: str) -> None:
    make_project(
        tmp_path,
        {
            "app.py": "import registry\n",
            "registry/__init__.py": discovery + "\n",
            "registry/member.py": "",
            "other/__init__.py": "import pkgutil\npkgutil.get_data\n",
        },
    )
    assert undeclared_discovery("app", root=tmp_path) == ["registry/__init__.py"]
    assert import_closure("app", root=tmp_path) == ["app.py", "registry/__init__.py"]
    (tmp_path / "registry" / "__init__.py").write_text(f"DISCOVERS_SUBMODULES = True\n{discovery}\n")
    assert undeclared_discovery("app", root=tmp_path) == []
    assert import_closure("app", root=tmp_path) == ["app.py", "registry/__init__.py", "registry/member.py"]


def test_no_project_stage_discovers_modules_undeclared() -> None:
    for stage in sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__"):
        assert undeclared_discovery(f"stages.{stage}") == [], stage
