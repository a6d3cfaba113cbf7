"""Gap: the emulator does not pip-install a layer that is only a requirements.txt (built by its Makefile on
`sam build`); Lambda would see the installed packages under /opt/python.

The emulator builds the same view from the project venv, which holds the same pins: a `python/` folder of
symlinks to exactly the distributions the layer's requirements.txt names (their top-level packages, modules and
dist-info), nothing else. Workers run without the venv's site-packages (`python -S`), so a function sees what
its layers hold plus what the Lambda python runtime itself provides (boto3 and its dependencies): a predict
function on the serving layer cannot import scikit-learn, as on AWS.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

# What Lambda's python3.12 runtime provides besides the standard library (the AWS SDK and its dependencies).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")


def requirement_names(requirements: Path) -> list[str]:
    """Distribution names in a requirements file (`name==1.2.3` lines; comments and options skipped)."""
    names = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
    return names


def build_site(names: list[str], site: Path) -> Path:
    """A folder of symlinks to the named installed distributions' top-level entries; `site` is (re)made.

    Raises metadata.PackageNotFoundError for a distribution the venv lacks (`make venv` installs them all).
    """
    site.mkdir(parents=True, exist_ok=True)
    for stale in site.iterdir():
        stale.unlink()
    for name in names:
        distribution = metadata.distribution(name)
        root = Path(str(distribution.locate_file("")))
        tops = {Path(str(file)).parts[0] for file in distribution.files or []}
        for top in sorted(tops):
            source = root / top
            target = site / top
            # `..` entries are scripts outside site-packages; a namespace folder (google/) may be shared
            if top == ".." or not source.exists() or target.exists():
                continue
            target.symlink_to(source, target_is_directory=source.is_dir())
    return site


def stage_requirements_layer(layer_dir: Path) -> bool:
    """Give a requirements-only layer its `python/` view; False if the layer has its own python/ folder."""
    requirements = layer_dir / "requirements.txt"
    if (layer_dir / "python").exists() or not requirements.is_file():
        return False
    build_site(requirement_names(requirements), layer_dir / "python")
    return True


def runtime_site(staging_dir: Path) -> Path:
    """The packages the Lambda python runtime provides, as a folder for every worker's sys.path."""
    return build_site(list(RUNTIME_PROVIDED), staging_dir / "lambda-runtime" / "python")
