"""A stamp of the machine that produced a set of metrics, and a fingerprint of what moves its numbers.

Neural weights trained on the CPU depend on the BLAS and ATen kernels, which differ by CPU model
and instruction set, thread count and library version: the same code and seed on another CPU type
gives other weights and per-attack EERs that move by a clip or two. The metric gate
(:mod:`deepfake_audio.gate`) compares the stamps of the baseline and the new metrics to tell "the
model changed" from "the machine changed".

The stamp (:func:`machine_stamp`) has three parts:

- ``numerics``: everything known to change floating-point results -- the CPU (vendor, model name,
  family/model numbers, SIMD flags, core count), thread counts, the BLAS/OpenMP libraries that
  ``threadpoolctl`` sees, ATen's CPU kernel set, numerics-relevant environment variables, library
  versions and the platform (OS, architecture, libc, Python);
- ``fingerprint``: a short hash of ``numerics`` only, so equal fingerprints mean "same numerics";
- ``record``: descriptive extras that do not enter the fingerprint (the full CPU-flag hash, the OS
  release string, BLAS library file names), and with ``provenance=True`` the date and git commit.

The stamp is computed where it is called: the report stage calls it, so it describes the machine
that ran the pipeline's last stage, which is where training ran unless a run was split across
machines. Nothing here prints or touches the disk; callers write the dict.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = 1
# Distributions whose version can change a metric (features, training, scoring). The first name of
# each tuple that is installed is recorded: xgboost ships as ``xgboost-cpu`` here.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "scikit-learn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "librosa": ("librosa",),
    "numba": ("numba",),
    "soundfile": ("soundfile",),
    "soxr": ("soxr",),
}
# Environment variables that pick kernels or rounding modes (thread counts are recorded as the
# counts the libraries actually use, not as variables).
NUMERICS_ENV = (
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_VERBOSE",
    "NPY_DISABLE_CPU_FEATURES",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "XGBOOST_CPU_ISA",
)
# CPU flags that select SIMD kernels; the others (virtualisation, power management, kernel
# features) change with the hypervisor or kernel without changing a result.
_SIMD_FLAG = re.compile(
    r"^(sse\d?\w*|ssse3|avx\w*|fma\w*|f16c|amx\w*|bmi\d|popcnt|vnni\w*|neon|asimd\w*|sve\w*|"
    r"fp16|fphp|asimdhp|bf16|i8mm|sha\w*|aes|pclmulqdq|xop|3dnow\w*)$"
)


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (Linux); empty elsewhere or when unreadable."""
    path = Path("/proc/cpuinfo")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if out:
                break  # one block is enough: the cores of one machine are alike
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip().lower(), value.strip())
    return out


def _sysctl(name: str) -> str:
    """``sysctl -n NAME`` on macOS/BSD; "" where there is no sysctl or no such key."""
    try:
        proc = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, check=False, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def cpu_info() -> tuple[dict[str, Any], list[str]]:
    """What identifies the CPU for numerics, and its full flag list.

    Returns:
        ``({"vendor", "model_name", "family", "model", "simd_flags", "count"}, all_flags)``; fields
        that the platform does not report are ``None``.
    """
    info = _cpuinfo()
    flags_text = info.get("flags") or info.get("features") or ""  # "Features" on ARM Linux
    model_name = info.get("model name") or info.get("cpu model") or None
    vendor = info.get("vendor_id") or info.get("cpu implementer") or None
    family = info.get("cpu family") or info.get("cpu architecture") or None
    model = info.get("model") or info.get("cpu part") or None
    if not info:  # macOS
        model_name = _sysctl("machdep.cpu.brand_string") or platform.processor() or None
        flags_text = " ".join((_sysctl("machdep.cpu.features"), _sysctl("machdep.cpu.leaf7_features"))).lower()
    flags = sorted(set(flags_text.lower().split()))
    return (
        {
            "vendor": vendor,
            "model_name": model_name,
            "family": family,
            "model": model,
            "simd_flags": [f for f in flags if _SIMD_FLAG.match(f)],
            "count": os.cpu_count(),
        },
        flags,
    )


def library_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`LIBRARIES` (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name, dists in LIBRARIES.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def _thread_pools() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process, as threadpoolctl reports them.

    numpy and torch are imported first, so that their libraries are loaded and seen.
    """
    import numpy  # noqa: F401 - loads its BLAS
    from threadpoolctl import threadpool_info

    try:
        import torch  # noqa: F401 - loads its OpenMP runtime
    except ImportError:
        pass
    return threadpool_info()


def _torch_info() -> dict[str, Any] | None:
    """ATen's CPU kernel set (``ATEN_CPU_CAPABILITY`` overrides it), its threads and backends."""
    try:
        import torch
    except ImportError:
        return None
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }


def numerics() -> dict[str, Any]:
    """Everything about this machine and environment known to change floating-point results."""
    cpu, _ = cpu_info()
    pools = _thread_pools()
    libc, libc_version = platform.libc_ver()
    return {
        "cpu": cpu,
        "torch": _torch_info(),
        # the library file's path is not numerics (one wheel installs in any folder)
        "blas": sorted(
            (
                {
                    "user_api": p.get("user_api"),
                    "internal_api": p.get("internal_api"),
                    "version": p.get("version"),
                    "architecture": p.get("architecture"),
                    "threading_layer": p.get("threading_layer"),
                    "num_threads": p.get("num_threads"),
                }
                for p in pools
            ),
            key=lambda p: json.dumps(p, sort_keys=True),
        ),
        "env": {name: os.environ[name] for name in NUMERICS_ENV if name in os.environ},
        "libraries": library_versions(),
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "libc": f"{libc} {libc_version}".strip() or None,
            "python": platform.python_version(),
        },
    }


def fingerprint(numerics_part: Mapping[str, Any]) -> str:
    """A 16-hex-digit digest of a stamp's ``numerics``: equal digests, equal numerics."""
    return hashlib.sha256(json.dumps(numerics_part, sort_keys=True).encode()).hexdigest()[:16]


def _git(args: list[str], repo: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def written(repo: Path | str = ".") -> dict[str, Any]:
    """When and from what commit: the UTC date, ``repo``'s HEAD and whether tracked files differ from it."""
    status = _git(["status", "--porcelain", "--untracked-files=no"], Path(repo))
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git(["rev-parse", "HEAD"], Path(repo)),
        "git_dirty": None if status is None else bool(status),
    }


def machine_stamp(*, provenance: bool = False, repo: Path | str = ".") -> dict[str, Any]:
    """The stamp of this machine: ``schema``, ``fingerprint``, ``numerics`` and ``record``.

    Args:
        provenance: also record the UTC date and ``repo``'s git commit (and whether its work tree
            was dirty). Off for pipeline outputs, which must be byte-identical when re-run on one
            machine; on for the committed CI baseline, which is written on purpose.
        repo: the git repository whose commit is recorded.
    """
    part = numerics()
    _, flags = cpu_info()
    record: dict[str, Any] = {
        "cpu_flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16] if flags else None,
        "os": platform.platform(),
        "blas_files": sorted(Path(p["filepath"]).name for p in _thread_pools() if p.get("filepath")),
    }
    if provenance:
        record.update(written(repo))
    return {"schema": SCHEMA, "fingerprint": fingerprint(part), "numerics": part, "record": record}


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The leaves of two stamps' ``numerics`` that differ, as ``"key: old -> new"`` lines."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(differences(a, b, prefix=f"{name}."))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a != b:
            # the BLAS libraries: name the field that changed, not the whole list
            out.extend(
                differences({f"[{i}]": x for i, x in enumerate(a)}, {f"[{i}]": y for i, y in enumerate(b)}, prefix=name)
            )
        elif a != b:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
