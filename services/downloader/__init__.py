"""The downloader daemon: rebuild files from chunk records, verify them, publish them atomically."""
