"""Commands the CLI prints for the user to run next, spelled so that they run as printed in the same shell.

`loopline` when the `loopline` on PATH is the script running now; otherwise the path the user needs
(`.venv/bin/loopline` from the repository root) or `python -m loopline.cli` with this interpreter.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path


def _relative(path: Path) -> str:
    """`path` relative to the working directory when below it (shorter to read), else absolute."""
    absolute = Path.cwd() / path  # not resolve(): the venv's python is a symlink to the system's
    try:
        relative = str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
    return relative if "/" in relative else f"./{relative}"


def program() -> list[str]:
    """How to start the `loopline` that is running now."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "loopline" and script.exists():
        on_path = shutil.which("loopline")
        if on_path and Path(on_path).samefile(script):
            return ["loopline"]
        return [_relative(script)]
    return [_relative(Path(sys.executable)), "-m", "loopline.cli"]


def command(*arguments: str) -> str:
    """A runnable `loopline ...` line, shell-quoted."""
    return shlex.join([*program(), *arguments])
