"""Where normcheck keeps files between sessions, apart from any store: one place, no torch."""

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``NORMCHECK_CACHE`` if set, else ``~/.cache/normcheck``."""
    return Path(os.environ.get("NORMCHECK_CACHE") or Path.home() / ".cache" / "normcheck")
