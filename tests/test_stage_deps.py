"""dvc.yaml lists exactly the code each stage runs (tools/stage_deps.py), and the training key hashes the same code.

The first test is the CI gate: it fails when a module gains or loses an import and dvc.yaml was not
regenerated with ``python -m tools.stage_deps --write``.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from deepfake_audio.codedeps import ROOT, import_closure
from tests.test_codedeps import make_project
from tools import stage_deps


def test_every_stage_in_dvc_yaml_lists_exactly_the_code_it_runs() -> None:
    problems = stage_deps.check(ROOT / "dvc.yaml", ROOT)
    assert not problems, "dvc.yaml disagrees; run `python -m tools.stage_deps --write`:\n" + "\n".join(problems)
    # Not vacuous: every stage of dvc.yaml was checked, foreach stages included.
    declared = set(yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])
    checked = {s.name: s for s in stage_deps.read_stages(ROOT / "dvc.yaml", ROOT)}
    assert set(checked) == declared
    assert checked["train"].modules == ("stages.train",) and checked["evaluate"].modules == ("stages.evaluate",)


def _source_of(obj) -> str:
    """The repo-relative file of the module that defines ``obj`` (wherever a refactor moved it)."""
    return Path(inspect.getsourcefile(sys.modules[obj.__module__])).resolve().relative_to(ROOT).as_posix()


def test_the_issue_cases_are_covered() -> None:
    """An edit to the EER re-runs training and evaluation; restyling a chart does not re-extract."""
    from deepfake_audio.metrics import compute_eer
    from deepfake_audio.plots import _style

    deps = {s.name: set(s.deps) for s in stage_deps.read_stages(ROOT / "dvc.yaml", ROOT)}
    eer, style = _source_of(compute_eer), _source_of(_style)
    assert eer in deps["train"] and eer in deps["evaluate"]
    assert style not in deps["features"] and style in deps["examples"] and style in deps["evaluate"]


def test_training_key_hashes_the_train_stage_closure(tmp_path: Path) -> None:
    """The train stage keys bundles on the closure of the module dvc.yaml's train command runs,
    and the key reads every byte of those files."""
    from deepfake_audio.bundle import training_key
    from deepfake_audio.models import get_model_kind
    from deepfake_audio.params import ModelParams, TrainParams
    from stages import train

    (train_stage,) = {s.name: s for s in stage_deps.read_stages(ROOT / "dvc.yaml", ROOT)}["train"].modules
    assert train.CODE_MODULE == train_stage
    assert import_closure(train_stage)  # the real module resolves to project code
    code = [tmp_path / "a.py", tmp_path / "b.py"]
    for path in code:
        path.write_text("x = 1\n")

    def key() -> str:
        return training_key(
            get_model_kind("cnn"),
            section=ModelParams(),
            train_params=TrainParams(),
            device="cpu",
            inputs=[],
            code=code,
            config={},
        )

    before = key()
    code[1].write_text("x = 2\n")
    assert key() != before


# ---------------------------------------------------------------- the tool on a fake project

FAKE_DVC_YAML = """\
# a header comment
stages:
  prepare:
    cmd: python -m stages.prepare --out data/prepared
    deps:
      - stages/prepare.py
      - lib/old.py          # no longer imported
      # the raw data, edited by hand
      - data/raw
    params:
      - prepare
    outs:
      - data/prepared

  fit:
    foreach: ${models}   # one per model
    do:
      cmd: python -m stages.fit --model ${key} --out data/models/${key}
      deps:
        - lib/registry        # a folder
        - data/prepared
        - data/extra/${key}
      outs:
        - data/models/${key}

  bare:
    cmd: python -m stages.bare
    outs:
      - out.txt

  shell:
    cmd: echo hi > hi.txt
    deps:
      - lib/old.py
    outs:
      - hi.txt
plots:
  - data/models
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    make_project(
        tmp_path,
        {
            "stages/__init__.py": "",
            "stages/prepare.py": "from lib import io\n",
            "stages/fit.py": "def main():\n    from lib.registry import get\n",
            "stages/bare.py": "",
            "lib/__init__.py": "",
            "lib/io.py": "",
            "lib/old.py": "",
            "lib/registry/__init__.py": "DISCOVERS_SUBMODULES = True\n",
            "lib/registry/a.py": "from lib import io\n",
            "lib/registry/b.py": "",
        },
    )
    (tmp_path / "dvc.yaml").write_text(FAKE_DVC_YAML, encoding="utf-8")
    return tmp_path


def test_check_exits_1_with_a_readable_diff(fake: Path, capsys: pytest.CaptureFixture) -> None:
    assert stage_deps.main(["--check", "--root", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "prepare (python -m stages.prepare):" in err
    assert "+ lib/io.py    (runs, not listed)" in err and "- lib/old.py    (listed, not run)" in err
    assert "- lib/registry    (a folder: deps name files)" in err and "+ lib/registry/b.py" in err
    assert "shell" not in err  # no project module in its command: not checked


def test_write_replaces_code_deps_and_keeps_data_deps_and_comments(fake: Path) -> None:
    assert stage_deps.main(["--write", "--root", str(fake)]) == 0
    text = (fake / "dvc.yaml").read_text(encoding="utf-8")
    assert stage_deps.main(["--check", "--root", str(fake)]) == 0
    doc = yaml.safe_load(text)
    stages = doc["stages"]
    assert stages["prepare"]["deps"] == [
        "lib/__init__.py",
        "lib/io.py",
        "stages/__init__.py",
        "stages/prepare.py",
        "data/raw",
    ]
    assert stages["fit"]["do"]["deps"] == [
        "lib/__init__.py",
        "lib/io.py",
        "lib/registry/__init__.py",
        "lib/registry/a.py",
        "lib/registry/b.py",
        "stages/__init__.py",
        "stages/fit.py",
        "data/prepared",
        "data/extra/${key}",
    ]
    assert stages["bare"]["deps"] == ["stages/__init__.py", "stages/bare.py"]  # a deps block is added
    assert stages["shell"]["deps"] == ["lib/old.py"]  # not a project command: untouched
    assert doc["plots"] == ["data/models"] and stages["fit"]["foreach"] == "${models}"
    for comment in ("# a header comment", "# the raw data, edited by hand", "foreach: ${models}   # one per model"):
        assert comment in text
    assert "no longer imported" not in text  # the comment of a removed entry goes with it
    assert text.index("bare:") < text.index("stages/bare.py") < text.index("out.txt")
    # Idempotent: a second write changes nothing.
    assert stage_deps.main(["--write", "--root", str(fake)]) == 0
    assert (fake / "dvc.yaml").read_text(encoding="utf-8") == text


def test_check_follows_a_new_import(fake: Path, capsys: pytest.CaptureFixture) -> None:
    stage_deps.main(["--write", "--root", str(fake)])
    (fake / "lib" / "io.py").write_text(
        textwrap.dedent("""
        def load():
            from lib import old  # a lazy import still runs
    """)
    )
    assert stage_deps.main(["--check", "--root", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "+ lib/old.py" in err and err.count("+ lib/old.py") == 2  # prepare and fit both import lib.io


def test_check_fails_on_pkgutil_discovery_without_the_marker(fake: Path, capsys: pytest.CaptureFixture) -> None:
    stage_deps.main(["--write", "--root", str(fake)])
    registry = fake / "lib" / "registry" / "__init__.py"
    registry.write_text("import pkgutil\nNAMES = list(pkgutil.iter_modules(__path__))\n")
    stage_deps.main(["--write", "--root", str(fake)])  # the closure cannot see the members: writing does not fix it
    assert stage_deps.main(["--check", "--root", str(fake)]) == 1
    assert (
        "! lib/registry/__init__.py    (discovers modules with pkgutil: declare `DISCOVERS_SUBMODULES = True`"
        in capsys.readouterr().err
    )
