"""What ``labrun submit`` uploads: the project's code and configs from an allow-list, staged.

The job's working directory is a temporary folder holding copies of exactly these files of the
project (nothing else of the checkout reaches the cluster):

- ``rl/``, ``supervised/``, ``cluster/``: their ``.py`` files (the packages hold nothing else);
- ``configs/``: its ``.yaml`` and ``.yml`` files;
- ``pyproject.toml`` and ``README.md`` (pyproject names the README);
- the experiment file given to ``submit`` (and, for a sweep, the experiment file it names), when
  it lies elsewhere in the project, e.g. ``my_exps/x.yaml``: it is what the job runs.

Inside the allowed folders, hidden files and folders, ``__pycache__`` and folders reached through
symbolic links are never looked at. A file the allow-list would take whose name looks like a secret (``.env``, ``*.pem``,
``*.key``, ``id_rsa*``, ``*token*``, ``*credential*``, ...) is refused, naming it, and so is a
symbolic link that leads outside the project: the upload goes to every node of the cluster, and
a secret that was put among the configs by mistake should be moved, not silently left behind
(skipping it would also hide the mistake from whoever expected the job to have it). An upload
over ``MAX_BYTES`` is refused, naming its largest files. See docs/security.md.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster.errors import UsageError

PACKAGES = ("rl", "supervised", "cluster")   # their .py files
CONFIGS = ("configs",)                       # their YAML files
TOP_FILES = ("pyproject.toml", "README.md")
CONFIG_SUFFIXES = (".yaml", ".yml")
MAX_BYTES = 20 * 2**20
KEY_FILES = (".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.ppk",
             "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".netrc", "_netrc",
             "*.keystore", "*.jks")
# Words that mark a data or config file as credentials. Not applied to Python modules: they are
# the code the job runs (labrun's own cluster/infra/auth_token.py, a lab's tokenizer.py).
SECRET_WORDS = ("*credential*", "*token*", "*secret*", "*password*", "*service?account*")


@dataclass(frozen=True)
class Upload:
    """The staged working directory and what it holds (paths relative to it)."""

    folder: Path
    files: tuple[str, ...]
    total_bytes: int

    def summary(self) -> str:
        return f"{len(self.files)} files, {_size(self.total_bytes)}"


def looks_secret(name: str) -> bool:
    """Whether a file name looks like a key, a token or credentials (case-insensitive); a Python
    module only by the key files' patterns."""
    name = name.lower()
    patterns = KEY_FILES if name.endswith(".py") else KEY_FILES + SECRET_WORDS
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _walk(folder: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under ``folder`` ending in ``suffixes``; hidden names, __pycache__ and folders
    that are symbolic links are passed over."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            if not entry.is_symlink():
                yield from _walk(entry, suffixes)
        elif entry.name.endswith(suffixes):
            yield entry


def project_files(project: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """The allow-listed files of ``project`` (see the module's docstring), checked: raises
    UsageError for a secret-looking name, a link out of the project or an extra file that is
    not inside it."""
    project = project.resolve()
    found: list[Path] = []
    for name in PACKAGES:
        found += _walk(project / name, (".py",))
    for name in CONFIGS:
        found += _walk(project / name, CONFIG_SUFFIXES)
    found += [project / name for name in TOP_FILES if (project / name).is_file()]
    for path in extra:
        path = Path(path).resolve()
        if not path.is_relative_to(project):
            raise UsageError(f"{path}: a submitted experiment file must be inside the project "
                             f"folder {project}, whose files are uploaded to the cluster")
        if path.is_file() and path not in found:
            found.append(path)
    secrets = [p for p in found if looks_secret(p.name)]
    if secrets:
        raise UsageError(f"refusing to upload {', '.join(str(p) for p in secrets)}: the name looks "
                         f"like a key, a token or credentials, and the upload goes to every node; "
                         f"move it out of the project's code and configs (docs/security.md)")
    outside = [p for p in found if not p.resolve().is_relative_to(project)]
    if outside:
        raise UsageError(f"refusing to upload {', '.join(str(p) for p in outside)}: a symbolic "
                         f"link to a file outside the project {project}")
    return found


def stage(project: Path, dest: Path, extra: Sequence[Path] = (),
          max_bytes: int | None = None) -> Upload:
    """Copies the allow-listed files of ``project`` (and ``extra``) into the empty folder
    ``dest``, keeping their relative paths; refuses an upload over ``max_bytes`` (default
    ``MAX_BYTES``)."""
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    project = project.resolve()
    files = project_files(project, extra)
    sizes = {p: p.stat().st_size for p in files}
    total = sum(sizes.values())
    if total > max_bytes:
        largest = sorted(files, key=sizes.__getitem__, reverse=True)[:5]
        names = ", ".join(f"{p.absolute().relative_to(project)} ({_size(sizes[p])})"
                          for p in largest)
        raise UsageError(f"the upload would be {_size(total)}, over the {_size(max_bytes)} "
                         f"allowed; the largest files: {names}")
    relative = []
    for path in files:
        rel = path.absolute().relative_to(project)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)   # the content: a link is copied as the file it leads to
        relative.append(rel.as_posix())
    return Upload(dest, tuple(relative), total)


@contextmanager
def staged(project: Path, extra: Sequence[Path] = ()) -> Iterator[Upload]:
    """``stage`` into a temporary folder, deleted on leaving (Ray has zipped and uploaded it
    by the time ``submit_job`` returns)."""
    with tempfile.TemporaryDirectory(prefix="labrun-upload-") as tmp:
        yield stage(project, Path(tmp), extra)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"
