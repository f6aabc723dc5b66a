"""Both images built with podman and run the way users run them (read-only root, no capabilities, a
non-root user), streaming a tree from an uploader container to a downloader container through the broker on
the host. No image registry is reachable here, so the base image is made locally by scripts/container-base."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamsend.demo.broker import free_port
from streamsend.demo.verify import compare_trees
from tests.support.brokers import Broker
from tests.support.kafka import TopicFactory

# What this shows does not depend on the kind of broker: the embedded one is enough.
pytestmark = [pytest.mark.slow, pytest.mark.brokers("tansu")]

ROOT = Path(__file__).parents[2]
BASE = "localhost/streamsend-base:bookworm"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """podman with its settings and store in a folder of the test's (the machine's own are left alone)."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are missing (scripts/test installs them as root, via scripts/install-tools)")
    if os.geteuid() != 0:
        pytest.skip("building the base image with mmdebstrap needs root")
    home = tmp_path_factory.mktemp("podman")
    (home / "containers.conf").write_text(
        "[containers]\ndefault_ulimits = []\n[engine]\n"
        f'runtime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{home}/libpod"\n'
    )
    (home / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{home}/storage"\nrunroot = "{home}/run"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(home / "containers.conf"),
           "CONTAINERS_STORAGE_CONF": str(home / "storage.conf")}  # fmt: skip
    subprocess.run([str(ROOT / "scripts/container-base"), BASE], env=env, check=True, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run(["podman", "system", "reset", "-f"], env=env, check=False, capture_output=True)


def _podman(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=check, timeout=600)


def test_images_build_small_and_stream_a_tree_between_containers(
    podman: dict[str, str], broker: Broker, topics: TopicFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sizes = {}
    for role in ("uploader", "downloader"):
        image = f"localhost/streamsend-{role}:test"
        build = ["build", "--format", "docker"]  # the docker format keeps HEALTHCHECK (OCI has none)
        build += ["--pull=never", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE}"]
        _podman(podman, *build, "-f", str(ROOT / f"Dockerfile.{role}"), "-t", image, str(ROOT))
        sizes[role] = int(_podman(podman, "image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    base = int(_podman(podman, "image", "inspect", "--format", "{{.Size}}", BASE).stdout.strip())

    source, target = tmp_path / "outbox", tmp_path / "inbox"
    (source / "nested" / "deeper").mkdir(parents=True)
    target.mkdir()
    (source / "hello.txt").write_text("from a container")
    (source / "nested" / "deeper" / "data.bin").write_bytes(os.urandom(3_000_000))
    topic = topics.reserve()
    common = [
        "--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", f"STREAMSEND_BOOTSTRAP_SERVERS={broker.bootstrap}", "-e", f"STREAMSEND_TOPIC={topic}",
        "-e", "STREAMSEND_SESSION_TIMEOUT=2", "-e", "STREAMSEND_HEARTBEAT_INTERVAL=0.5",
        "-e", "STREAMSEND_MIN_FREE_SPACE=0",
    ]  # fmt: skip
    ports = {"downloader": free_port(), "uploader": free_port()}
    down = _podman(podman, "run", "-d", *common, "-e", f"STREAMSEND_METRICS_PORT={ports['downloader']}",
                   "-v", f"{target}:/data/inbox:U", "localhost/streamsend-downloader:test").stdout.strip()  # fmt: skip
    up = _podman(podman, "run", "-d", *common, "-e", f"STREAMSEND_METRICS_PORT={ports['uploader']}",
                 "-e", "STREAMSEND_MIN_FILE_AGE=1", "-e", "STREAMSEND_UPLOADER_NAME=container",
                 "-v", f"{source}:/data/outbox:U", "localhost/streamsend-uploader:test").stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not compare_trees(source, target / "container").identical:
            assert time.monotonic() < deadline, _podman(podman, "logs", down, check=False).stderr[-3000:]
            time.sleep(0.5)
        for container in (up, down):
            assert _podman(podman, "healthcheck", "run", container, check=False).returncode == 0  # HEALTHCHECK
            user = _podman(podman, "exec", container, "id", "-u").stdout.strip()
            assert user == "10001"
            _podman(podman, "stop", "-t", "30", container)
            code = _podman(podman, "inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
            assert code == "0", _podman(podman, "logs", container, check=False).stderr[-3000:]
    finally:
        _podman(podman, "rm", "-f", up, down, check=False)
    with capsys.disabled():
        megabytes = {role: f"{size / 1e6:.0f} MB" for role, size in sizes.items()}
        print(f"\nimage sizes: {megabytes}, base {base / 1e6:.0f} MB")
