"""``streamsend uploader --check``: what the uploader would do with these settings, found without doing it."""

from __future__ import annotations

import os

from streamsend.shared import check
from streamsend.shared.errors import SettingsError
from streamsend.uploader.settings import UploaderSettings
from streamsend.uploader.state_topic import STATE_PARTITIONS


async def run(settings: UploaderSettings) -> int:
    """Print the findings and the plan; the exit code (shared/check.py)."""
    found = check.Check(settings, {settings.topic: "WRITE", settings.state_topic: "READ,WRITE"})
    found.ok("settings", "valid")
    root = settings.input_dir  # a folder: the settings say so
    if not os.access(root, os.R_OK | os.X_OK):
        found.fail("input_dir", f"{root} cannot be read", 2)
    else:
        found.ok("input_dir", f"{root} can be read")
    sealing, sealer = "as they are", None
    try:
        sealer = settings.sealer()
    except SettingsError as exc:
        found.fail("keys", str(exc), 2)
    else:
        if sealer is not None:
            sealing = "sealed for " + ", ".join(sealer.recipient_ids)
            sealing += ", signed" if settings.signing_key is not None else ", unsigned"
            found.ok("keys", sealing)
    chunks = "chunks"
    if await found.broker("uploader"):
        async with check.admin(settings, "uploader") as admin:
            topic = await check.topic(found, admin, settings.topic, settings.topic_partitions)
            if topic is not None:
                from streamsend.uploader.sending import chunk_size  # the daemon's own choice, with its errors

                try:
                    overhead = sealer.overhead_bytes if sealer is not None else 0
                    choice = chunk_size(
                        settings, topic.topic_max_message_bytes, topic.broker_max_message_bytes, overhead
                    )
                except SettingsError as exc:
                    found.fail("chunk_size", str(exc), 2)
                else:
                    found.ok("chunk_size", choice.describe())
                    chunks = f"chunks of {choice.chunk_size} bytes"
            if settings.state_topic:
                await check.topic(found, admin, settings.state_topic, STATE_PARTITIONS)
    memory = "remembering what it sent in " + (settings.state_topic or "memory only (state_topic is empty)")
    found.would(
        f"watch {root} (events, and a rescan every {settings.rescan_interval:g} s) and send each file matching"
        f" {settings.file_pattern!r}, once unchanged for {settings.min_file_age:g} s, {sealing}, as uploader"
        f" {settings.uploader_name} to topic {settings.topic} at {settings.bootstrap_servers} in {chunks},"
        f" {memory}."
    )
    return found.code
