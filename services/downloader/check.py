"""``streamsend downloader --check``: what the downloader would do with these settings, found without doing it."""

from __future__ import annotations

import os
import shutil

from streamsend.downloader.settings import DownloaderSettings
from streamsend.shared import check
from streamsend.shared.errors import SettingsError
from streamsend.shared.settings import size_text


async def run(settings: DownloaderSettings) -> int:
    """Print the findings and the plan; the exit code (shared/check.py)."""
    found = check.Check(settings, {settings.topic: "READ"})
    found.ok("settings", "valid")
    root = settings.output_dir  # a folder: the settings say so
    if not os.access(root, os.W_OK | os.X_OK):
        found.fail("output_dir", f"{root} cannot be written to", 2)
    else:
        free = shutil.disk_usage(root).free
        where = f"{root} can be written to"
        if free < settings.min_free_space:
            wanted = size_text(int(settings.min_free_space))
            found.fail("output_dir", f"{where}, but {size_text(free)} are free (min_free_space {wanted}):"
                       " downloading would pause at once", 1)  # fmt: skip
        else:
            found.ok("output_dir", f"{where}, {free / 1e9:.1f} GB free")
    trust = "taking unsealed files"
    try:
        opener = settings.opener()
    except SettingsError as exc:
        found.fail("keys", str(exc), 2)
    else:
        if opener.active:
            trust = opener.describe()
            found.ok("keys", trust)
    if await found.broker("downloader"):
        async with check.admin(settings, "downloader") as admin:
            topic = await check.topic(found, admin, settings.topic, settings.topic_partitions)
            if topic is not None and topic.partitions == 0:
                found.fail(f"topic {settings.topic}", "does not exist: nothing to read (an uploader creates it)", 1)
    found.would(
        f"join group {settings.group_id} on topic {settings.topic} at {settings.bootstrap_servers} and publish each"
        f" verified file at {root}/<uploader>/<path>, {trust}."
    )
    return found.code
