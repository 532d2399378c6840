"""Where each stored instance came from, in files only the node writes.

An index row names the called and calling AE titles and the peer address of the
association (or STOW-RS request) that brought its instance; routes match on them and
the called AE decides the grouping. A power loss can lose the row while the file stays,
and the file's own File Meta cannot say where it came from: a STOW-RS client writes it
(and must get those bytes back from WADO-RS). So the receive path writes the origin
next to the instances, durably, before it answers Success, and start-up reconciliation
(:mod:`dicom_node.store.reconcile`) reads it back:

- ``instances/{study}/{series}/origin.json``: the origin of the series' first
  instance (its *owner*), written once per series and then only read back (a few
  hundred bytes) for every further instance;
- ``instances/{study}/{series}/{sop}.origin.json``: the origin of an instance that came
  from another origin than the owner (the same series sent on two AE titles, or a
  STOW-RS client storing into a C-STOREd series), written before that instance is
  placed. An instance without one is the owner's.

A record is written to ``incoming/``, fsynced, and linked under its name (the series
record: only if there is none, so the first origin wins even across processes; an
instance's: atomically replacing an older one). Its name is made durable by the fsync of
the series directory that the instance's placement does before its index row commits
(:meth:`~dicom_node.store.writer.InstanceStore.place`), so a record costs one fsync of
its own, and no instance is answered Success before its record is on disk.

Neither name can be an instance's (``{sop}.dcm``), nor each other's: ``{sop}`` is
never empty, and a UID that is not digits and dots is named by its hash
(:func:`~dicom_node.store.writer.safe_component`), so a hostile UID cannot reach another
series' directory or another instance's record. Records are written under the SOP
Instance UID's claim (:class:`dicom_node.store.intake.Intake`), so one instance's record
is never written twice at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from dicom_node.store.errors import StoreError
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

DIMSE = "dimse"  # a C-STORE on one of the node's AE titles
STOWRS = "stowrs"  # a STOW-RS request, received as the web source's "AE"
KINDS = (DIMSE, STOWRS)

SERIES_RECORD = "origin.json"
INSTANCE_RECORD = ".origin.json"  # suffix after the instance file's stem
_VERSION = 1
_MAX_RECORD = 4096  # bytes: a record is ~150; anything larger is not ours
_CACHED_SERIES = 4096  # series owners remembered


class OriginError(ValueError):
    """No usable origin record."""


@dataclass(frozen=True)
class Origin:
    """Who sent an instance: a DIMSE association or a STOW-RS request."""

    kind: str  # DIMSE | STOWRS
    called_ae: str
    calling_ae: str
    peer_address: str | None

    def encode(self) -> bytes:
        """The record's bytes (JSON)."""
        return json.dumps({"version": _VERSION, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Origin:
        """The origin ``data`` records; OriginError if it is not a record of ours."""
        try:
            if len(data) > _MAX_RECORD:
                raise ValueError(f"{len(data)} bytes")
            fields = json.loads(data)
            if fields.pop("version") != _VERSION:
                raise ValueError("unknown version")
            origin = cls(**fields)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
            raise OriginError(f"not an origin record: {err}") from err
        peer = origin.peer_address
        texts = (origin.kind, origin.called_ae, origin.calling_ae)
        if (
            origin.kind not in KINDS
            or not all(isinstance(t, str) for t in texts)
            or not (peer is None or isinstance(peer, str))
        ):
            raise OriginError("not an origin record: bad field")
        return origin


def series_record(series_dir: Path) -> Path:
    """The series' record: the origin of its first instance."""
    return series_dir / SERIES_RECORD


def instance_record(instance: Path) -> Path:
    """The record of the instance file ``instance`` (``{sop}.dcm``), if it has one."""
    return instance.with_name(instance.name.removesuffix(".dcm") + INSTANCE_RECORD)


def _read_bytes(path: Path) -> bytes:
    """A record's bytes (at most one more than a record can have)."""
    with open(path, "rb") as fh:
        return fh.read(_MAX_RECORD + 1)


def _read(path: Path) -> Origin:
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise OriginError(f"no origin record ({path.name})") from None
    except OSError as err:
        raise OriginError(f"cannot read {path.name}: {err.strerror or err}") from err
    return Origin.decode(data)


def origin_of(instance: Path, owners: dict[Path, Origin | str] | None = None) -> Origin:
    """The origin of the stored file ``instance``: its own record, else its series'.
    ``owners`` memoises the series records already read (or why one is unusable).
    Raises OriginError if neither is there or readable."""
    own = instance_record(instance)
    if os.path.lexists(own):
        return _read(own)
    series = instance.parent
    cached = owners.get(series) if owners is not None else None
    if cached is None:
        try:
            cached = _read(series_record(series))
        except OriginError as err:
            cached = str(err)
        if owners is not None:
            owners[series] = cached
    if isinstance(cached, str):
        raise OriginError(cached)
    return cached


@dataclass(frozen=True)
class Noted:
    """What :meth:`OriginRecords.note` wrote for one instance, to undo if the instance is
    not kept after all."""

    store: InstanceStore
    record: Path | None = None  # the instance's record, if one was written
    previous: bytes | None = None  # what that record held before (None: nothing)
    written: bytes | None = None  # what it was made to hold

    def undo(self) -> None:
        """Put the instance's record back as it was (best effort: a stale record of an
        instance that is not there is harmless, and the next copy rewrites it). A record
        another copy wrote meanwhile (another process) is left as it is."""
        if self.record is None:
            return
        try:
            if self.written is not None and _read_or_none(self.record) != self.written:
                return
            if self.previous is None:
                self.record.unlink(missing_ok=True)
            else:
                _write(self.store, self.record, self.previous, replace=True)
                if self.store.fsyncs.enabled:  # no placement follows to make it durable
                    self.store.fsyncs.sync_now(self.record.parent)
        except OSError as err:
            log.warning("cannot restore %s: %s", self.record, err)


def _read_or_none(path: Path) -> bytes | None:
    """What the record ``path`` holds (None: no record)."""
    try:
        return _read_bytes(path)
    except FileNotFoundError:
        return None


def _write(store: InstanceStore, path: Path, data: bytes, *, replace: bool) -> bool:
    """Write ``data`` to ``incoming/``, fsync it and link it as ``path`` (``replace``:
    atomically over what is there; else only if nothing is: False then). The name is
    durable only once ``path``'s directory is fsynced."""
    tmp = store.incoming / f"{uuid.uuid4().hex}.origin"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)  # a few hundred bytes: one write
            if store.fsyncs.enabled:
                os.fsync(fd)
        finally:
            os.close(fd)
        store.ensure_dir(path.parent)  # each new level durable in its parent
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):  # a leftover is removed on next start
            os.unlink(tmp)


class OriginRecords:
    """Writes the origin records of ``store``'s instances; thread-safe."""

    def __init__(self, store: InstanceStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # the cache
        # series directory -> (its record's bytes, its owner; None if unusable). Keyed by
        # content, not by the file's inode and times: retention removes a series' record
        # with its directory, and a new one may get the old one's inode and timestamp.
        self._owners: dict[str, tuple[bytes, Origin | None]] = {}

    def note(self, instance: Path, origin: Origin) -> Noted:
        """Record that the instance about to be placed at ``instance`` comes from
        ``origin`` (durable once the placement fsynced the instance's directory). Raises
        StoreError if a record could not be read or written. Call it under the
        instance's claim."""
        try:
            return self._note(instance, origin)
        except OSError as err:
            if isinstance(err, StoreError):
                raise
            reason = err.strerror or str(err)
            raise StoreError(
                err.errno, f"cannot record the origin of {instance.name}: {reason}"
            ) from err

    def _note(self, instance: Path, origin: Origin) -> Noted:
        owner = self._owner(instance.parent, origin)
        record = instance_record(instance)
        previous: bytes | None = None
        if os.path.lexists(record):
            try:
                with open(record, "rb") as fh:
                    previous = fh.read(_MAX_RECORD + 1)
            except FileNotFoundError:
                pass
        if previous is None and owner == origin:
            return Noted(self.store)  # the common case: a read and a stat
        data = origin.encode()
        if previous == data:
            return Noted(self.store)
        # Another origin than the owner's, or a record left by an earlier copy of this
        # instance: it gets a record of its own (replaced atomically).
        _write(self.store, record, data, replace=True)
        return Noted(self.store, record, previous, data)

    def _owner(self, series: Path, origin: Origin) -> Origin | None:
        """The owner of ``series``, making ``origin`` the owner if it has none yet."""
        path = series_record(series)
        key = str(series)
        try:
            data = _read_bytes(path)
        except FileNotFoundError:
            _write(self.store, path, origin.encode(), replace=False)  # the first one wins
            data = _read_bytes(path)
        cached = self._owners.get(key)
        if cached is not None and cached[0] == data:
            return cached[1]
        try:
            owner: Origin | None = Origin.decode(data)
        except OriginError as err:  # every instance of this series gets its own record
            log.warning("origin record %s unusable (%s): recording each instance's", path, err)
            owner = None
        with self._lock:
            if len(self._owners) >= _CACHED_SERIES:
                self._owners.clear()
            self._owners[key] = (data, owner)
        return owner
