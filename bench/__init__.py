"""The benchmark harness: ``python -m bench`` (or ``scripts/bench``). Not part of the test suite."""
