from __future__ import annotations

import inspect

from streamsend.shared import errors


def test_the_tree_in_the_docstring_is_the_tree_in_the_code() -> None:
    classes = {
        name: cls for name, cls in inspect.getmembers(errors, inspect.isclass) if cls.__module__ == errors.__name__
    }
    assert errors.__doc__ is not None
    drawn = {line.split()[-1] if len(line.split()) == 1 else line.strip(" │├└─").split()[0]
             for line in errors.__doc__.splitlines() if line.startswith("    ")}  # fmt: skip
    assert drawn == set(classes)
    for name, cls in classes.items():
        assert issubclass(cls, errors.StreamsendError), name
    assert issubclass(errors.AccessRefused, errors.SettingsError)
    assert issubclass(errors.ForeignRecordError, errors.RecordError)
