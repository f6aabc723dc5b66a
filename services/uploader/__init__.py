"""The uploader daemon: watch a tree, wait for static files, send them as chunk records."""
