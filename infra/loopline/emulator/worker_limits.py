"""A Lambda execution environment's memory and /tmp, enforced on an emulated worker process.

Memory: Lambda stops an environment whose memory passes the function's MemorySize and fails the invocation with
`Runtime.OutOfMemory`. The emulator reads the worker's resident memory (its own and its child processes') from
/proc every 50 ms while an invocation runs, and its peak (VmHWM) when it ends, so a spike between two readings
is caught too; either past MemorySize stops the worker with that error.

/tmp: Lambda's /tmp holds EphemeralStorage MB and writes past it fail with ENOSPC. Each worker gets its own
TMPDIR: a tmpfs of exactly that size where the emulator may mount one (as root), so a write past the cap fails
with ENOSPC inside the handler as on Lambda; elsewhere a plain folder whose size is read with the memory, and
an invocation that passes the cap is stopped with the same `No space left on device` error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopline.emulator.enforcement_switches import enforced

POLL_SECONDS = 0.05
MIB = 1024 * 1024


def resident_bytes(pid: int, field: str = "VmRSS", children: bool = True) -> int:
    """`field` (VmRSS now, VmHWM peak) of `pid`, plus (`children`) the current resident memory of its
    descendants, in bytes (Lambda counts every process of the environment)."""
    total = _status_kib(pid, field) * 1024
    for child in _children(pid) if children else []:
        total += resident_bytes(child, "VmRSS")
    return total


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def folder_bytes(folder: Path) -> int:
    """Bytes held by the files under `folder` (what /tmp usage counts)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_blocks * 512
            except OSError:
                continue
    return total


@dataclass
class EphemeralStorage:
    """A worker's /tmp: `path` (its TMPDIR), capped at `size_mb`; `mounted`: a tmpfs enforces the cap itself."""

    path: Path
    size_mb: int
    mounted: bool

    @classmethod
    def create(cls, function_name: str, size_mb: int) -> EphemeralStorage:
        path = Path(tempfile.mkdtemp(prefix=f"loopline-tmp-{function_name[:40]}-"))
        mounted = enforced("ephemeral-storage") and _mount_tmpfs(path, size_mb)
        return cls(path, size_mb, mounted)

    def over_cap(self) -> bool:
        """Whether the folder holds more than the cap (only read where no tmpfs enforces it)."""
        if self.mounted or not enforced("ephemeral-storage"):
            return False
        return folder_bytes(self.path) > self.size_mb * MIB

    def remove(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=1777", "tmpfs", str(path)],
                            check=False, capture_output=True)
    return result.returncode == 0


def over_memory(pid: int, memory_mb: int, field: str = "VmRSS", children: bool = True) -> bool:
    """Whether the worker's memory (now, or at its peak with field="VmHWM") passes MemorySize."""
    return enforced("memory") and resident_bytes(pid, field, children) > memory_mb * MIB
