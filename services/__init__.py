"""Streamsend: stream files of any size through a Kafka topic, verified end to end.

``streamsend.uploader`` watches a folder tree and sends every static file as chunk records;
``streamsend.downloader`` rebuilds them, verifies them and publishes them atomically into a mirrored tree;
``streamsend.shared`` holds the wire format and what both daemons share.
"""

__version__ = "0.1.0"
