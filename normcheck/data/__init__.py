"""Data: sources that yield uint8 images, split protocols, and the tensor cache.

``load_splits`` is the one entry point the rest of normcheck uses.
"""

from normcheck.data.cache import Images, SplitData, default_cache_dir, load_splits
from normcheck.data.sources import DataError, Source, resolve_source
from normcheck.data.split import PROTOCOLS, Protocol

__all__ = [
    "PROTOCOLS",
    "DataError",
    "Images",
    "Protocol",
    "Source",
    "SplitData",
    "default_cache_dir",
    "load_splits",
    "resolve_source",
]
