"""Loaded by every Python subprocess the test suite starts (tests/support/logscan.py puts this folder on
PYTHONPATH): copies what the process writes to stdout and stderr into ``$MALL_CONNECTOR_LOGSCAN_DIR`` so the
plugin can check that no secret reached a log line, a traceback or a CLI message. Standard library only;
does nothing when the variable is not set."""

import os
import sys

_dir = os.environ.get("MALL_CONNECTOR_LOGSCAN_DIR")


class _Tee:
    """Writes go to the real stream and to the scan file; everything else is the real stream's."""

    def __init__(self, stream, copy):
        self._stream = stream
        self._copy = copy

    def write(self, text):
        n = self._stream.write(text)
        try:
            self._copy.write(text)
            self._copy.flush()
        except Exception:  # noqa: BLE001 - the scan must never break the process under test
            pass
        return n

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


if _dir and os.path.isdir(_dir) and sys.stdout is not None and sys.stderr is not None:
    try:
        _copy = open(os.path.join(_dir, f"{os.getpid()}.out"), "a", encoding="utf-8", errors="replace")
        _copy.write(os.environ.get("MALL_CONNECTOR_LOGSCAN_TEST", "") + "\n")
        _copy.flush()
        sys.stdout = _Tee(sys.stdout, _copy)
        sys.stderr = _Tee(sys.stderr, _copy)
    except OSError:
        pass
