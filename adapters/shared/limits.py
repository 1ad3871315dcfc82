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
MAX_XLSX_OTHER_PART = 8 * 2**20  # styles, workbook, theme: kilobytes in a real export


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
    """Refuse an XLSX that would cost more than its limits, before openpyxl opens it.

    * The parts' unpacked sizes come from the zip's directory; Python's zipfile never unpacks a part
      past its recorded size (it stops, and the checksum then fails), so their sum is a real bound
      (``max_xlsx_bytes``).
    * openpyxl streams the sheet, but reads the other parts whole: the shared strings (one Python
      string each, ~8x the XML for short ones: 42 MiB of them measured 690 MiB RSS) are counted first
      (``max_xlsx_strings``), and any other part (styles, workbook) may be at most
      ``MAX_XLSX_OTHER_PART`` unpacked, where a real one has kilobytes.
    """
    pos = stream.tell()
    try:
        with zipfile.ZipFile(stream) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise FeedRefused(source, "max_xlsx_bytes", limits.max_xlsx_bytes,
                                  f"the workbook has {len(infos)} parts (an XLSX has a few dozen)")
            total = sum(i.file_size for i in infos)
            if total > limits.max_xlsx_bytes:
                raise FeedRefused(source, "max_xlsx_bytes", limits.max_xlsx_bytes,
                                  f"the workbook unpacks to {_mib(total)}, more than {_mib(limits.max_xlsx_bytes)}")
            for info in infos:
                name = info.filename.lower()
                if name.startswith("xl/worksheets/"):
                    continue  # streamed by openpyxl's read-only mode; bounded by max_xlsx_cells
                if name.endswith("sharedstrings.xml"):
                    with z.open(info) as part:
                        _count_shared_strings(part, source, limits.max_xlsx_strings)
                elif info.file_size > MAX_XLSX_OTHER_PART:
                    raise FeedRefused(source, "max_xlsx_bytes", limits.max_xlsx_bytes,
                                      f"its part {info.filename} unpacks to {_mib(info.file_size)}; openpyxl reads "
                                      f"it whole, and such a part has kilobytes (at most {_mib(MAX_XLSX_OTHER_PART)})")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise FeedUnavailable(f"{source}: not a readable XLSX workbook: {e}") from None
    finally:
        stream.seek(pos)


def _count_shared_strings(part: IO[bytes], source: str, max_strings: int) -> None:
    """Count the shared-string entries (``si`` elements, any prefix) with expat, keeping nothing;
    refuse past ``max_strings``. A DTD or entity declaration is refused (as defusedxml does)."""
    from xml.parsers import expat

    count = 0

    def end(name: str) -> None:
        nonlocal count
        if name.rpartition("}")[2] == "si":
            count += 1
            if count > max_strings:
                raise FeedRefused(source, "max_xlsx_strings", max_strings,
                                  f"the workbook has more than {max_strings} shared strings")

    def forbidden(*_args) -> None:
        raise FeedUnavailable(f"{source}: not a readable XLSX workbook: sharedStrings declares a DTD or entities")

    parser = expat.ParserCreate(namespace_separator="}")
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = forbidden
    parser.EntityDeclHandler = forbidden
    try:
        while chunk := part.read(64 * 1024):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as e:
        raise FeedUnavailable(f"{source}: not a readable XLSX workbook: sharedStrings: {e}") from None
