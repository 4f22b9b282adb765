#!/usr/bin/env python3
"""Check or rewrite the code deps of every stage in dvc.yaml: exactly the files its command runs.

A stage's code deps are computed, not maintained by hand: for a command ``python -m stages.X``
they are the static import closure of ``stages.X`` (:func:`deepfake_audio.codedeps.import_closure`),
one file per entry, folders never (a folder dep would also re-run the stage for a module in it
that the stage never imports). Foreach stages (``train``, ``evaluate``) are checked through their
``do.cmd``.

Which ``deps`` entries are code: a ``.py`` path, or a path inside a project package (a top-level
folder with an ``__init__.py``: ``deepfake_audio/...``, ``stages/...``). Everything else (``data/...``,
``params``-like files) is data and is left exactly as written. Stages whose command runs no
project module with ``-m`` are not checked.

Usage::

    python -m tools.stage_deps --check   # exit 1 and a diff when dvc.yaml disagrees (tests/test_stage_deps.py runs it)
    python -m tools.stage_deps --write   # rewrite the code entries of each stage's deps in place

``--write`` is a line-based edit of the ``deps:`` blocks only (PyYAML would drop the comments):
code entries are replaced by the closure, sorted, followed by the data entries in their order,
each kept verbatim with any comment lines above it. The result is re-parsed and must equal the
old file with only the code deps changed, or nothing is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from pathlib import Path

import yaml

from deepfake_audio.codedeps import DISCOVERY_MARKER, import_closure, module_path, undeclared_discovery

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("stage_deps")

_MODULE_FLAG = re.compile(r"(?:^|\s)-m\s+([A-Za-z_][\w.]*)")
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[^\s#:][^:#]*?):\s*(?:#.*)?$")
_ITEM_LINE = re.compile(r"^(?P<indent> *)- (?P<value>.*?)\s*(?:#.*)?$")


@dataclasses.dataclass(frozen=True)
class StageCode:
    """One stage of dvc.yaml: the project modules its command runs and its deps entries.

    Attributes:
        name: the stage name in dvc.yaml (a foreach stage's group name, e.g. ``train``).
        modules: project modules run with ``python -m``, in command order.
        deps: its ``deps`` entries as written.
        expected: the code deps it should list: the union of the modules' closures, sorted.
        undeclared: files of the closure that discover modules with pkgutil without declaring it
            (``DISCOVERS_SUBMODULES = True``): what they import by name is missing from ``expected``.
    """

    name: str
    modules: tuple[str, ...]
    deps: tuple[str, ...]
    expected: tuple[str, ...]
    undeclared: tuple[str, ...] = ()

    def code_deps(self, root: Path) -> list[str]:
        return [d for d in self.deps if is_code_dep(d, root)]

    def diff(self, root: Path) -> tuple[list[str], list[str]]:
        """``(missing, extra)``: code the command runs that is not listed, and listed code it does not run."""
        listed = set(self.code_deps(root))
        return sorted(set(self.expected) - listed), sorted(listed - set(self.expected))


def is_code_dep(entry: str, root: Path) -> bool:
    """A ``deps`` entry that names code: a ``.py`` path or a path in a top-level project package."""
    entry = entry.strip().strip("/")
    if entry.endswith(".py"):
        return True
    top = entry.split("/", 1)[0]
    return bool(top) and "$" not in top and (root / top / "__init__.py").is_file()


def command_modules(cmd: object, root: Path) -> tuple[str, ...]:
    """Project modules a stage command runs with ``-m`` (``python -m stages.train``, ``torchrun ... -m x``)."""
    text = " ".join(cmd) if isinstance(cmd, list) else str(cmd or "")
    return tuple(m for m in _MODULE_FLAG.findall(text) if module_path(m, root=root) is not None)


def read_stages(dvc_yaml: Path, root: Path) -> list[StageCode]:
    """Every stage of ``dvc_yaml`` whose command runs a project module, with its closure."""
    doc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    out = []
    for name, stage in (doc.get("stages") or {}).items():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        modules = command_modules(body.get("cmd"), root)
        if not modules:
            log.debug("%s: no project module in its command; not checked", name)
            continue
        expected = sorted({path for module in modules for path in import_closure(module, root=root)})
        undeclared = sorted({path for module in modules for path in undeclared_discovery(module, root=root)})
        out.append(
            StageCode(name, modules, tuple(str(d) for d in body.get("deps") or ()), tuple(expected), tuple(undeclared))
        )
    return out


def check(dvc_yaml: Path, root: Path) -> list[str]:
    """Readable lines describing each disagreement; empty when every stage lists exactly its code."""
    lines = []
    for stage in read_stages(dvc_yaml, root):
        missing, extra = stage.diff(root)
        if missing or extra or stage.undeclared:
            lines.append(f"{stage.name} (python -m {' / '.join(stage.modules)}):")
            lines += [f"  + {p}    (runs, not listed)" for p in missing]
            lines += [
                f"  - {p}    ({'a folder: deps name files' if (root / p).is_dir() else 'listed, not run'})"
                for p in extra
            ]
            lines += [
                f"  ! {p}    (discovers modules with pkgutil: declare `{DISCOVERY_MARKER} = True` in it, "
                f"or what it imports by name is not a dep)"
                for p in stage.undeclared
            ]
    return lines


# ---------------------------------------------------------------- rewriting


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_blank_or_comment(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _scalar(value: str) -> str:
    """The string a plain or quoted one-line YAML scalar stands for (``'a'`` -> ``a``)."""
    loaded = yaml.safe_load(value) if value else None
    return loaded if isinstance(loaded, str) else value


def _stage_spans(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Stage name -> ``[start, end)`` line span of its body under the top-level ``stages:``."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^stages:\s*(#.*)?$", line)), None)
    if start is None:
        return {}
    spans: dict[str, tuple[int, int]] = {}
    stage_indent, current, begin = None, None, 0
    end = len(lines)
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if _is_blank_or_comment(line):
            continue
        indent = _indent(line)
        if indent == 0:  # the next top-level key
            end = i
            break
        if stage_indent is None:
            stage_indent = indent
        if indent == stage_indent:
            match = _KEY_LINE.match(line)
            if match:
                if current is not None:
                    spans[current] = (begin, i)
                current, begin = _scalar(match["key"].strip()), i + 1
    if current is not None:
        spans[current] = (begin, end)
    return spans


def _rewrite_block(lines: list[str], begin: int, end: int, expected: list[str], root: Path) -> list[str]:
    """The stage body ``lines[begin:end]`` with its code deps replaced by ``expected``."""
    body = lines[begin:end]
    cmd_at = next((i for i, line in enumerate(body) if re.match(r"^ *cmd:", line)), None)
    if cmd_at is None:
        return body
    key_indent = _indent(body[cmd_at])
    deps_at = next(
        (i for i, line in enumerate(body) if _indent(line) == key_indent and re.match(r"^ *deps:\s*(#.*)?$", line)),
        None,
    )
    if deps_at is None:
        if not expected:
            return body
        # A new block right after the command (and any continuation lines of it).
        at = cmd_at + 1
        while at < len(body) and (_is_blank_or_comment(body[at]) or _indent(body[at]) > key_indent):
            at += 1
        while at > cmd_at + 1 and _is_blank_or_comment(body[at - 1]):
            at -= 1
        pad = " " * (key_indent + 2)
        block = [" " * key_indent + "deps:\n", *(f"{pad}- {p}\n" for p in expected)]
        return body[:at] + block + body[at:]
    # The block: item lines (indented more, or "- " at the key's own indent), comments and blanks.
    stop = deps_at + 1
    while stop < len(body):
        line = body[stop]
        if (
            _is_blank_or_comment(line)
            or _indent(line) > key_indent
            or (_indent(line) == key_indent and line.lstrip().startswith("- "))
        ):
            stop += 1
        else:
            break
    while stop > deps_at + 1 and _is_blank_or_comment(body[stop - 1]):
        stop -= 1  # trailing comments and blank lines belong to the next key
    items = body[deps_at + 1 : stop]
    item_indent = next((_indent(line) for line in items if _ITEM_LINE.match(line)), key_indent + 2)
    head: list[str] = []  # comments above code entries: kept at the top of the block
    data: list[str] = []  # data entries verbatim, each with the comments above it
    pending: list[str] = []
    for line in items:
        match = _ITEM_LINE.match(line)
        if match is None or _indent(line) != item_indent:
            pending.append(line)  # a comment, a blank, or a continuation line of the item above
            continue
        if is_code_dep(_scalar(match["value"]), root):
            head += [p for p in pending if p.strip()]
        else:
            data += pending + [line]
        pending = []
    data += pending
    new_items = head + [f"{' ' * item_indent}- {p}\n" for p in expected] + data
    if not any(_ITEM_LINE.match(line) for line in new_items):
        return body[:deps_at] + body[stop:]  # no deps at all: no empty (null) `deps:` key
    return body[: deps_at + 1] + new_items + body[stop:]


def rewrite(text: str, stages: list[StageCode], root: Path) -> str:
    """``text`` (dvc.yaml) with the code part of each stage's deps set to the stage's closure."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    spans = _stage_spans(lines)
    # Bottom-up, so earlier spans stay valid while later blocks change length.
    for stage in sorted(stages, key=lambda s: spans.get(s.name, (-1, -1))[0], reverse=True):
        if stage.name not in spans:
            raise ValueError(f"stage {stage.name!r} not found in the text of dvc.yaml")
        begin, end = spans[stage.name]
        lines[begin:end] = _rewrite_block(lines, begin, end, list(stage.expected), root)
    return "".join(lines)


def _with_code_deps(doc: dict, stages: list[StageCode], root: Path) -> dict:
    """``doc`` (parsed dvc.yaml) as it should read after :func:`rewrite`: only code deps replaced."""
    import copy

    doc = copy.deepcopy(doc)
    for stage in stages:
        raw = doc["stages"][stage.name]
        body = raw["do"] if "do" in raw else raw
        data = [d for d in body.get("deps") or [] if not is_code_dep(str(d), root)]
        deps = [*stage.expected, *data]
        if deps:
            body["deps"] = deps
        else:
            body.pop("deps", None)
    return doc


def write(dvc_yaml: Path, root: Path) -> list[str]:
    """Rewrite ``dvc_yaml`` so every stage lists exactly its code; the check's lines of what changed."""
    changes = check(dvc_yaml, root)
    stages = read_stages(dvc_yaml, root)
    text = dvc_yaml.read_text(encoding="utf-8")
    new = rewrite(text, stages, root)
    want = _with_code_deps(yaml.safe_load(text), stages, root)
    got = yaml.safe_load(new)
    if got != want:  # the line edit went wrong somewhere: never leave a broken dvc.yaml behind
        raise RuntimeError(f"rewriting {dvc_yaml} would change more than the code deps; edit it by hand")
    if new != text:
        tmp = dvc_yaml.with_name(dvc_yaml.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(dvc_yaml)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml disagrees (the default)")
    mode.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    parser.add_argument("--dvc-yaml", type=Path, default=None, help="default: <root>/dvc.yaml")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project root (default: this checkout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = args.root.resolve()
    dvc_yaml = args.dvc_yaml or root / "dvc.yaml"
    if args.write:
        changes = write(dvc_yaml, root)
        log.info(
            "%s: %s",
            dvc_yaml,
            "rewrote the code deps:\n" + "\n".join(changes)
            if changes
            else "every stage already lists exactly its code",
        )
        return 0
    problems = check(dvc_yaml, root)
    if problems:
        print(
            f"{dvc_yaml}: deps disagree with the code each stage runs "
            f"(`python -m tools.stage_deps --write` fixes them):\n" + "\n".join(problems),
            file=sys.stderr,
        )
        return 1
    log.info(
        "%s: every stage lists exactly the code it runs (%d stages checked)", dvc_yaml, len(read_stages(dvc_yaml, root))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
