"""Test helpers: running the daemons in-process, talking to the broker, waiting, cutting the network."""
