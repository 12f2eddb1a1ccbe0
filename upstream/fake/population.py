"""A demo population directory (``pregbridge demo-data``) indexed for the fake Persontjenesten.

The fake must serve a million persons from one process without holding a million parsed documents: it reads
``persons.jsonl`` once at start and keeps, per person, the byte offset of its line (8 bytes) and one sorted
64-bit key (40 bits of the hash of the person id, 24 bits of the line's index): 16 bytes a person.
A lookup bisects the keys and reads the candidate lines with ``os.pread`` (thread-safe, no shared file
position), checking the person id, so a hash collision costs a second read and never a wrong answer.
The feed files are small (about 0.1 % of the population a day) and indexed as lists.

The feed the fake serves (docs/upstream.md "The fake"):

- with the null-day extract (default): events 1..P are ``PersonPopulated``, one per line of persons.jsonl,
  and feed event *s* of the files is served as P + (s − snapshotSequence);
- without it: only the feed, under the files' own sequence numbers (a store loaded from the directory then
  continues at snapshotSequence + 1).

A person is served as its latest version whose sequence number is at most the *released* position: a version
from persons.jsonl (sequence: its extract event, or snapshotSequence without the extract), or the document an
event carried.
"""

from __future__ import annotations

import bisect
import os
import threading
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

__all__ = ["FakeEvent", "Population", "Version"]

_INDEX_BITS = 24  # up to 16.7 million persons (Norway's register holds about 6)
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_PREFIX = b'{"personId":"'  # demo-data writes personId first; other files take the slow path


class FakeEvent(NamedTuple):
    sequence_number: int
    person_id: str
    event_type: str  # the file's FREG hendelsestype, or PersonPopulated for the extract


class Version(NamedTuple):
    sequence_number: int
    document: dict[str, Any]  # the person document (docs/data-formats.md)


@dataclass(frozen=True, slots=True)
class _FeedEntry:
    sequence_number: int
    person_id: str
    event_type: str
    file: int
    offset: int
    length: int


def _hash40(person_id: str) -> int:
    # Python's own string hash: the index lives only in this process, so its per-process seed does not matter
    return hash(person_id) & 0xFF_FFFF_FFFF


def _person_id(line: bytes) -> str:
    if line.startswith(_PREFIX):
        end = line.find(b'"', len(_PREFIX))
        if end > 0 and b"\\" not in line[len(_PREFIX):end]:
            return line[len(_PREFIX):end].decode()
    doc = orjson.loads(line)
    pid = doc.get("personId") if isinstance(doc, dict) else None
    if not isinstance(pid, str) or not pid:
        raise ValueError("a line of persons.jsonl has no personId")
    return pid


class Population:
    """Read-only index of a population directory and its feed (see the module docstring)."""

    def __init__(self, directory: Path, *, extract: bool = True) -> None:
        manifest = orjson.loads((directory / "manifest.json").read_bytes())
        if not isinstance(manifest, Mapping):
            raise ValueError(f"{directory}/manifest.json is not a JSON object")
        files = manifest.get("files") or {}
        self.snapshot_sequence = int(manifest.get("snapshotSequence") or 0)
        self.extract = extract
        self._fds: list[int] = []
        self._persons_fd = self._open(directory / str(files.get("persons", "persons.jsonl")))
        self._offsets, self._keys = self._index_persons()
        self.size = len(self._offsets) - 1
        self.extract_size = self.size if extract else 0
        offset = self.extract_size - self.snapshot_sequence if extract else 0
        self._feed: list[_FeedEntry] = []
        self._versions: dict[str, list[_FeedEntry]] = {}
        for name in files.get("feed") or []:
            self._index_feed(directory / str(name), offset)
        self.first_feed_sequence = self._feed[0].sequence_number if self._feed else None
        self.latest_sequence = self._feed[-1].sequence_number if self._feed else (
            self.extract_size if extract else self.snapshot_sequence)
        self._numbers: dict[str, str] | None = None  # number -> person id, built on first use
        self._numbers_lock = threading.Lock()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def _open(self, path: Path) -> int:
        fd = os.open(path, os.O_RDONLY)
        self._fds.append(fd)
        return fd

    # -- indexing -------------------------------------------------------------------------------------

    def _index_persons(self) -> tuple[array[int], array[int]]:
        offsets = array("Q")
        keys: list[int] = []
        pos = 0
        with os.fdopen(os.dup(self._persons_fd), "rb") as f:
            for line in f:
                if line.strip():
                    if len(offsets) > _INDEX_MASK:
                        raise ValueError("more persons than the fake indexes (16.7 million)")
                    keys.append(_hash40(_person_id(line)) << _INDEX_BITS | len(offsets))
                    offsets.append(pos)
                pos += len(line)
        offsets.append(pos)
        keys.sort()
        return offsets, array("Q", keys)

    def _index_feed(self, path: Path, offset: int) -> None:
        fd = self._open(path)
        file_no = len(self._fds) - 1
        pos = 0
        with os.fdopen(os.dup(fd), "rb") as f:
            for line in f:
                if line.strip():
                    event = orjson.loads(line)
                    seq = int(event["sequenceNumber"]) + offset
                    if self._feed and seq != self._feed[-1].sequence_number + 1:
                        raise ValueError(f"{path}: sequence numbers are not contiguous at {seq - offset}")
                    entry = _FeedEntry(seq, str(event["personId"]), str(event["eventType"]), file_no, pos, len(line))
                    self._feed.append(entry)
                    self._versions.setdefault(entry.person_id, []).append(entry)
                pos += len(line)

    # -- reading --------------------------------------------------------------------------------------

    def _line(self, index: int) -> bytes:
        start, end = self._offsets[index], self._offsets[index + 1]
        return os.pread(self._persons_fd, end - start, start)

    def _find(self, person_id: str) -> tuple[int, bytes] | None:
        """The line number and line of ``person_id`` in persons.jsonl."""
        h = _hash40(person_id)
        i = bisect.bisect_left(self._keys, h << _INDEX_BITS)
        while i < len(self._keys) and self._keys[i] >> _INDEX_BITS == h:
            index = self._keys[i] & _INDEX_MASK
            line = self._line(index)
            if _person_id(line) == person_id:
                return index, line
            i += 1
        return None

    def _base_sequence(self, index: int) -> int:
        return index + 1 if self.extract else self.snapshot_sequence

    def version(self, person_id: str, upto: int) -> Version | None:
        """The person's latest version with a sequence number ≤ ``upto``; None if there is none yet."""
        for entry in reversed(self._versions.get(person_id, ())):
            if entry.sequence_number <= upto:
                event = orjson.loads(os.pread(self._fds[entry.file], entry.length, entry.offset))
                return Version(entry.sequence_number, event["person"])
        found = self._find(person_id)
        if found is None or self._base_sequence(found[0]) > upto:
            return None
        return Version(self._base_sequence(found[0]), orjson.loads(found[1]))

    def events(self, first: int, upto: int, limit: int) -> list[FakeEvent]:
        """Events with sequence numbers from ``first`` to ``upto`` (inclusive), at most ``limit``."""
        out: list[FakeEvent] = []
        last = min(upto, first + limit - 1)
        if first > last:
            return out
        if self.extract and first <= self.extract_size:
            a, b = first - 1, min(last, self.extract_size)  # line indexes a .. b-1
            chunk = os.pread(self._persons_fd, self._offsets[b] - self._offsets[a], self._offsets[a])
            lines = [ln for ln in chunk.split(b"\n") if ln.strip()]
            out += [FakeEvent(a + 1 + i, _person_id(ln), "PersonPopulated") for i, ln in enumerate(lines)]
        if self._feed and last >= self._feed[0].sequence_number:
            start = max(first, self._feed[0].sequence_number) - self._feed[0].sequence_number
            stop = last - self._feed[0].sequence_number + 1
            out += [FakeEvent(e.sequence_number, e.person_id, e.event_type) for e in self._feed[start:stop]]
        return out

    def event(self, sequence_number: int) -> FakeEvent | None:
        found = self.events(sequence_number, sequence_number, 1)
        return found[0] if found else None

    def person_ids(self) -> Iterator[str]:
        """Every person id of persons.jsonl and of the feed (the feed's new persons last)."""
        seen = set()
        for i in range(self.size):
            pid = _person_id(self._line(i))
            seen.add(pid)
            yield pid
        for pid in self._versions:
            if pid not in seen:
                yield pid

    def person_of_number(self, number: str) -> str | None:
        """The person that has or had ``number`` (any version). The index is built on first use: a full read."""
        with self._numbers_lock:
            if self._numbers is None:
                numbers: dict[str, str] = {}
                for i in range(self.size):
                    doc = orjson.loads(self._line(i))
                    for ident in doc.get("identifiers") or []:
                        numbers[ident["number"]] = doc["personId"]
                for pid, entries in self._versions.items():
                    for entry in entries:
                        doc = orjson.loads(os.pread(self._fds[entry.file], entry.length, entry.offset))["person"]
                        for ident in doc.get("identifiers") or []:
                            numbers[ident["number"]] = pid
                self._numbers = numbers
        return self._numbers.get(number)
