"""Step logs on disk: written with a size cap (head and tail kept), read back in chunks."""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_LOG_BYTES = 10_000_000
MARKER = "\n[... {omitted} bytes of log omitted (TaskPlannerApp.max_log_bytes) ...]\n"


class CappedLog:
    """A step's ``log.txt`` that keeps at most ``max_bytes`` of output: its head and its tail.

    The first half goes to disk as it arrives (readable while the step runs); later bytes
    are held in a tail buffer of at most the other half, written after an omission marker on
    ``close``.  Memory per log stays bounded by the tail half.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        # Unbuffered: what is written is at once readable through the log endpoint.
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 -- closed by close()
        self._head_room = max(0, max_bytes // 2 - self._file.tell())
        self._tail_max = max_bytes - max_bytes // 2
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._omitted = 0

    def write(self, data: bytes) -> None:
        """Add output: to disk while the head has room, else to the tail buffer."""
        if self._file.closed:  # a thread of a cancelled action may still log
            return
        if self._head_room:
            head = data[: self._head_room]
            self._file.write(head)
            self._head_room -= len(head)
            data = data[len(head) :]
        if data:
            self._tail.append(data)
            self._tail_size += len(data)
            self._trim_tail()

    def _trim_tail(self) -> None:
        """Drop the oldest tail bytes beyond the tail half (counted as omitted)."""
        while self._tail_size > self._tail_max:
            excess = self._tail_size - self._tail_max
            oldest = self._tail[0]
            if len(oldest) <= excess:
                self._tail.popleft()
                dropped = len(oldest)
            else:
                self._tail[0] = oldest[excess:]
                dropped = excess
            self._tail_size -= dropped
            self._omitted += dropped

    def close(self) -> None:
        """Write the marker (when bytes were left out) and the tail; close the file."""
        if self._file.closed:
            return
        try:
            if self._omitted:
                self._file.write(MARKER.format(omitted=self._omitted).encode())
            self._file.write(b"".join(self._tail))
        finally:
            self._tail.clear()
            self._file.close()


class CappedLogHandler(logging.Handler):
    """A logging handler writing formatted records to a step's ``log.txt`` through a cap."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        super().__init__()
        self.log = CappedLog(path, max_bytes)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log.write((self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()  # emit runs under the same lock, in the action's threads
        try:
            self.log.close()
        finally:
            self.release()
        super().close()


@dataclass(frozen=True)
class FileRange:
    """Bytes ``start`` to ``end`` of a file, read in chunks when sent."""

    path: Path
    start: int
    end: int

    @classmethod
    def of(
        cls, path: Path, *, offset: int = 0, length: int | None = None, tail: int | None = None
    ) -> FileRange:
        """A range of the file as it is now: ``offset``/``length``, or the last ``tail`` bytes.

        Empty when the file does not exist (a step that has written nothing yet).
        """
        size = path.stat().st_size if path.is_file() else 0
        if tail is not None:
            offset = max(0, size - tail)
        start = min(offset, size)
        end = size if length is None else min(size, start + length)
        return cls(path, start, end)

    def chunks(self, size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
        """The range's bytes, ``size`` at a time (blocking reads)."""
        if self.end <= self.start:
            return
        with open(self.path, "rb") as file:
            file.seek(self.start)
            remaining = self.end - self.start
            while remaining > 0 and (data := file.read(min(size, remaining))):
                remaining -= len(data)
                yield data


def log_text(pieces: Iterable[str | FileRange]) -> Iterator[str]:
    """A log's text, chunk by chunk: literal pieces as they are, file ranges decoded.

    Undecodable bytes (or a character a tail cut in two) become U+FFFD, as a log is text.
    """
    for piece in pieces:
        if isinstance(piece, str):
            yield piece
            continue
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        for chunk in piece.chunks():
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)


async def send_chunks(handler: RequestHandler, chunks: Generator[bytes, None, None]) -> None:
    """Send ``chunks`` as the reply body, without blocking the event loop or piling up memory.

    Each chunk is read in a worker thread (off the event loop) and flushed to the client
    before the next is read, so a slow client holds one chunk, not the whole file.
    """
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            handler.write(chunk)
            await handler.flush()
    except StreamClosedError:  # the client went away; nothing left to send to
        pass
    finally:
        chunks.close()
