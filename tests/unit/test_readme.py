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
