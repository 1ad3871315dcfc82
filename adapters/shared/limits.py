"""Bounds on what a feed may cost (issue 16): bytes, line length, rows, XLSX size and cells.

Each bound is a key of the adapter's section (``FeedLimits``, defaults far above a real feed). A feed
past one raises ``FeedRefused`` naming the source and the key: the engines treat it like any
unreadable feed (a failed poll, alerted after ``[shop] unreadable_polls_alert`` polls), and nothing
is read into memory beyond the bound.
"""

from __future__ import annotations

import io
import zipfile
from typing import IO, Iterator

from adapters.base import FeedRefused, FeedUnavailable
from adapters.shared.sections import FeedLimits

MAX_ZIP_MEMBERS = 10_000  # an XLSX has a few dozen parts


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


class _LimitedRaw(io.RawIOBase):
    """A binary stream that refuses to deliver anything past its first ``max_bytes`` bytes, or (when
    ``max_line_bytes`` is set) a line longer than that, counted in bytes between newlines."""

    def __init__(self, inner: IO[bytes], source: str, max_bytes: int, max_line_bytes: int | None):
        self._inner = inner
        self._source = source
        self._max_bytes = max_bytes
        self._max_line = max_line_bytes
        self._pos = inner.tell() if inner.seekable() else 0  # how far into the content we are
        self._run = 0  # bytes since the last newline
        self._line = 1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        pos = self._pos = self._inner.seek(offset, whence)
        if pos == 0:  # lines are counted from the start (a reader that seeks elsewhere does not count lines)
            self._run = 0
            self._line = 1
        return pos

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = self._inner.readinto(view)
        if not n:
            return 0
        self._pos += n  # a position, not a sum: a zip reader re-reading parts is not refused for it
        if self._pos > self._max_bytes:
            raise FeedRefused(self._source, "max_feed_bytes", self._max_bytes,
                              f"larger than {_mib(self._max_bytes)}")
        if self._max_line is not None:
            self._check_lines(view[:n].tobytes())
        return n

    def _check_lines(self, chunk: bytes) -> None:
        limit = self._max_line
        first = chunk.find(b"\n")
        if first < 0:
            self._run += len(chunk)
            if self._run > limit:
                self._refuse_line()
            return
        if self._run + first > limit:
            self._refuse_line()
        last = chunk.rfind(b"\n")
        if last - first > limit:  # a whole line inside this chunk may be too long: look at each
            start = first + 1
            while start <= last:
                nl = chunk.find(b"\n", start)
                if nl - start > limit:
                    self._line += chunk.count(b"\n", 0, start)
                    self._refuse_line()
                start = nl + 1
        self._line += chunk.count(b"\n")
        self._run = len(chunk) - last - 1

    def _refuse_line(self) -> None:
        raise FeedRefused(self._source, "max_line_bytes", self._max_line,
                          f"line {self._line} is longer than {_mib(self._max_line)} (a file that is one long line?)")

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def limited_stream(stream: IO[bytes], source: str, *, max_bytes: int, max_line_bytes: int | None = None) -> IO[bytes]:
    """``stream`` as a buffered binary stream that raises FeedRefused past the bounds. Closing it
    closes ``stream``."""
    return io.BufferedReader(_LimitedRaw(stream, source, max_bytes, max_line_bytes), buffer_size=64 * 1024)


def capped_rows(records, source: str, max_rows: int):
    """The same ``Records`` (header, rows), refusing the feed once it has more than ``max_rows`` rows."""

    def rows() -> Iterator:
        for count, row in enumerate(records.rows, 1):
            if count > max_rows:
                raise FeedRefused(source, "max_rows", max_rows, f"more than {max_rows} rows")
            yield row

    return records._replace(rows=rows())


def check_xlsx(stream: IO[bytes], *, source: str, limits: FeedLimits) -> None:
    """Refuse an XLSX whose parts would unpack to more than max_xlsx_bytes, before anything is
    unpacked. The sizes come from the zip's directory; Python's zipfile never unpacks a part past its
    recorded size (it stops, and the checksum then fails), so they are a real bound."""
    pos = stream.tell()
    try:
        with zipfile.ZipFile(stream) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FeedUnavailable(f"{source}: not a readable XLSX workbook: {e}") from None
    finally:
        stream.seek(pos)
    if len(infos) > MAX_ZIP_MEMBERS:
        raise FeedRefused(source, "max_xlsx_bytes", limits.max_xlsx_bytes,
                          f"the workbook has {len(infos)} parts (an XLSX has a few dozen)")
    total = sum(i.file_size for i in infos)
    if total > limits.max_xlsx_bytes:
        raise FeedRefused(source, "max_xlsx_bytes", limits.max_xlsx_bytes,
                          f"the workbook unpacks to {_mib(total)}, more than {_mib(limits.max_xlsx_bytes)}")
