"""Every exception of the project, in one tree; each is raised where it is defined below and caught where it
is decided what it means.

    StreamsendError
    ├── SettingsError             the daemon cannot start: exit code 2, one line per setting at fault
    │   └── AccessRefused         the broker's ACLs refuse what the daemon needs (says what to grant)
    ├── RecordError               a record the downloader logs, counts and skips
    │   ├── ProtocolError         it breaks the wire format (``reason``: a metrics label)
    │   │   └── ForeignRecordError    it is not a streamsend record at all
    │   ├── ConflictError         it contradicts earlier chunks of its upload
    │   └── RefusedUpload         its file is not for this downloader, or not from an uploader it trusts
    ├── UnsafePathError           a path or name that must not reach the filesystem
    ├── SourceFileError           the uploader's file cannot be sent this time
    │   ├── FileChangedError      it changed while being read: sent again once static
    │   └── Interrupted           shutdown began: sent again from the start after the restart
    ├── SendError                 Kafka did not take a file's records
    │   ├── PermanentSendError    retrying cannot mend it: failed until the file changes
    │   └── TransactionFault      transient, inside a transaction: aborted, the file sent again
    ├── ChunkSizeError            the chunk size cannot fit the broker's limit (a SettingsError at start)
    ├── PublishError              a verified file cannot take its place in the tree: quarantined
    └── BrokerError               an embedded test or demo broker did not start

Kafka's own errors (aiokafka.errors) are classified in ``shared/faults.py``: transient or permanent. What is
not an error is not an exception: a record the downloader must leave unconsumed (no disk space, a partition
to read again) is a value its handling returns (``downloader.pipeline.Halt``).
"""

from __future__ import annotations


class StreamsendError(Exception):
    """Base of every exception the project raises itself."""


class SettingsError(StreamsendError):
    """Settings that cannot start a daemon; ``str()`` is one line per setting at fault."""


class AccessRefused(SettingsError):
    """The broker's ACLs refuse what the daemon needs; the message names principal, operation and resource."""


class RecordError(StreamsendError, ValueError):
    """A record the downloader cannot use: logged, counted and skipped."""


class ProtocolError(RecordError):
    """A record that does not follow the wire format; the message says which rule it breaks.

    ``reason`` is one of a few fixed words (for metrics labels): malformed, version, unsafe_path, checksum,
    foreign, sealed (a sealed chunk that fails authentication).
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class ForeignRecordError(ProtocolError):
    """A record without streamsend headers: another producer's, on a shared topic."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "foreign")


class ConflictError(RecordError):
    """A chunk whose header contradicts earlier chunks of the same upload id."""


class RefusedUpload(RecordError):
    """A sealed-file policy refuses a whole upload: not sealed for this downloader's keys, or not from an
    uploader it trusts. ``reason`` is a metrics label; ``first`` is False for the upload's later records,
    which are skipped without another report."""

    def __init__(self, message: str, reason: str, *, first: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.first = first


class UnsafePathError(StreamsendError, ValueError):
    """A path or name that must not reach the filesystem; the message says why."""


class SourceFileError(StreamsendError):
    """The uploader's file cannot be sent this time."""


class FileChangedError(SourceFileError):
    """The file is no longer what was found static: changed, truncated, replaced or gone."""


class Interrupted(SourceFileError):
    """Shutdown began while a file was being sent: what was handed to Kafka is drained, the rest not read."""


class SendError(StreamsendError):
    """Kafka did not take a file's records."""


class PermanentSendError(SendError):
    """A fault that retrying cannot mend; the file is failed with this message."""


class TransactionFault(SendError):
    """A transient fault inside a transaction: a record cannot be sent again within it, so the transaction is
    aborted and the file sent again from the start (``__cause__`` is the fault)."""


class ChunkSizeError(StreamsendError, ValueError):
    """The configured chunk size cannot fit the broker's message limit."""


class PublishError(StreamsendError):
    """The verified file cannot take its place (a file where a folder should be, or the reverse)."""


class BrokerError(StreamsendError, RuntimeError):
    """An embedded broker (Tansu, or Apache Kafka for the tests) did not start or stop as it should."""
