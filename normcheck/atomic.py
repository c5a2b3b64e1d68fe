"""Atomic file writes: readers see the old file or the whole new one, never half of one.

The temporary file is created private (0600); before it takes the final name it gets the
permissions the user's umask gives any new file, so reports are as readable as the user says.
"""

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def once(path: Path, compute: Callable[[], T], dump: Callable[[T], str],
         load: Callable[[str], T]) -> T:
    """``compute`` once across processes: the first to ask computes under a file lock and
    writes the result atomically; every other waits for the lock and reads it."""
    from filelock import FileLock

    with FileLock(f"{path}.lock"):
        if path.exists():
            return load(path.read_text())
        value = compute()
        with atomic_path(path) as tmp:
            tmp.write_text(dump(value))
    return value
