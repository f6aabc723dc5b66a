"""Streamsend: stream files of any size through a Kafka topic, verified end to end.

``streamsend.uploader`` watches a folder tree and sends every static file as chunk records;
``streamsend.downloader`` rebuilds them, verifies them and publishes them atomically into a mirrored tree;
``streamsend.shared`` holds the wire format and what both daemons share.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamsend.api import Event, Receipt, Uploader
    from streamsend.arrivals import Arrival, Arrivals
    from streamsend.shared.errors import (
        FileChangedError,
        PermanentSendError,
        SettingsError,
        StreamsendError,
        UnsafePathError,
    )

_EXPORTS = {
    "Arrival": "streamsend.arrivals",
    "Arrivals": "streamsend.arrivals",
    "Event": "streamsend.api",
    "Receipt": "streamsend.api",
    "Uploader": "streamsend.api",
    "FileChangedError": "streamsend.shared.errors",
    "PermanentSendError": "streamsend.shared.errors",
    "SettingsError": "streamsend.shared.errors",
    "StreamsendError": "streamsend.shared.errors",
    "UnsafePathError": "streamsend.shared.errors",
}


def __getattr__(name: str) -> Any:
    """The public API, imported when first used: the commands need none of it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamsend' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Arrival",
    "Arrivals",
    "Event",
    "FileChangedError",
    "PermanentSendError",
    "Receipt",
    "SettingsError",
    "StreamsendError",
    "UnsafePathError",
    "Uploader",
    "__version__",
]
