"""The README documents every setting the daemons accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamsend.downloader.settings import DownloaderSettings
from streamsend.uploader.settings import UploaderSettings

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(set(UploaderSettings.model_fields) | set(DownloaderSettings.model_fields)))
def test_every_setting_is_in_the_readme_table(name: str) -> None:
    assert f"| `{name}` |" in README


def test_the_readme_is_a_users_guide_first() -> None:
    """Usage before operations and internals, which live in docs/; what a newcomer needs is there."""
    headings = [line[3:] for line in README.splitlines() if line.startswith("## ")]
    assert headings.index("Two commands") < headings.index("Use") < headings.index("How it behaves")
    assert not {"Performance", "Repository layout", "Deployment"} & set(headings)
    for doc in ("OPERATIONS.md", "INTERNALS.md", "PROTOCOL.md"):
        assert f"(docs/{doc})" in README
        assert (Path(__file__).parents[2] / "docs" / doc).is_file()
    assert "scripts/demo --broker kafka" in README  # the demo on the broker users run
    assert "broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url" in README  # a broker by hand
    assert "**What is not mirrored.** Deletions" in README
