"""Data: sources that yield uint8 images, split protocols, and the tensor cache.

``Images`` decodes a source once and draws each replicate's split from it (``splits``);
``resolve_source`` and ``DataError`` name what was found and what is wrong with it.
"""

from normcheck.data.cache import Images, SplitData, default_cache_dir, load_splits
from normcheck.data.sources import DataError, Source, resolve_source
from normcheck.data.split import PROTOCOLS, SplitProtocol

__all__ = [
    "PROTOCOLS",
    "DataError",
    "Images",
    "SplitProtocol",
    "Source",
    "SplitData",
    "default_cache_dir",
    "load_splits",
    "resolve_source",
]
