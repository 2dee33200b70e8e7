"""What a file's first bytes say it is: text, compressed, or binary.

One sniffer for the command line (which refuses such a file with a message
naming the fix) and for a directory or glob context (which leaves such files
out), so both judge a file the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["SNIFF_BYTES", "FileKind", "kind_of", "sniff"]

#: How many leading bytes are looked at.
SNIFF_BYTES = 8192

# The formats logs are rotated into, by magic number, and the command that turns each back into text.
_COMPRESSED = ((b"\x1f\x8b", "gzip", "zcat"), (b"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
               (b"\xfd7zXZ\x00", "xz", "xzcat"), (b"BZh", "bzip2", "bzcat"))


@dataclass(frozen=True)
class FileKind:
    """What a file's first :data:`SNIFF_BYTES` bytes show: a compressed format (and its command), NUL bytes."""

    compressed: tuple[str, str] | None
    has_nul: bool

    @property
    def binary(self) -> bool:
        """Not text rlm should read as it is: compressed, or with NUL bytes."""
        return self.has_nul or self.compressed is not None


def _compression(head: bytes) -> tuple[str, str] | None:
    """The compressed format a file's first bytes announce, and the command that decompresses it."""
    for magic, name, tool in _COMPRESSED:
        if head.startswith(magic) and (name != "bzip2" or head[3:4].isdigit()):
            return name, tool
    return None


def kind_of(head: bytes) -> FileKind:
    """What a file's (or an object's) first bytes show."""
    return FileKind(compressed=_compression(head), has_nul=b"\0" in head)


def sniff(path: str | os.PathLike[str]) -> FileKind:
    """Read the first :data:`SNIFF_BYTES` bytes of ``path`` and say what they show; raises ``OSError``."""
    with open(path, "rb") as f:
        return kind_of(f.read(SNIFF_BYTES))
