"""Memoised File Meta encoding for spooled C-STOREs (guarded pynetdicom tweak).

In chunked-dataset mode pynetdicom builds each spooled file's File Meta Information with
pydicom (``create_file_meta``, then ``write_file_meta_info``) for every instance (its
cost: ``benchmarks/receive.py``). :func:`install` makes both memoise pydicom's encoding
per SOP class, transfer syntax and SOP Instance UID length, and splice the instance's
UID into a copy; any other use of them goes to pydicom unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple


class _MetaFor(NamedTuple):
    """What pynetdicom's File Meta for a spooled C-STORE is made of (its defaults for the
    implementation UID and version)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


_META_UID_TAG = b"\x02\x00\x03\x00UI"  # (0002,0003) Media Storage SOP Instance UID


@functools.lru_cache(maxsize=512)
def _meta_around_uid(
    sop_class_uid: str, transfer_syntax: str, uid_length: int
) -> tuple[bytes, bytes]:
    """pydicom's encoding of the File Meta for a UID of ``uid_length`` characters, split
    around that UID's (padded) value."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import UID
    from pynetdicom.dsutils import create_file_meta

    placeholder = "1" * uid_length
    buf = DicomBytesIO()
    _pydicom_write_meta(
        buf,
        create_file_meta(
            sop_class_uid=UID(sop_class_uid),
            sop_instance_uid=UID(placeholder),
            transfer_syntax=UID(transfer_syntax),
        ),
    )
    data = buf.getvalue()
    start = data.index(_META_UID_TAG) + 8
    end = start + int.from_bytes(data[start - 2 : start], "little")
    return data[:start], data[end:]


def encoded_file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """The File Meta group pynetdicom writes for a C-STORE (as pydicom encodes it)."""
    head, tail = _meta_around_uid(str(sop_class_uid), str(transfer_syntax), len(sop_instance_uid))
    value = sop_instance_uid.encode("ascii")
    return head + value + b"\0" * (len(value) % 2) + tail


def _create_file_meta(
    *, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any, **other: Any
) -> Any:
    if other or not str(sop_instance_uid).isascii():
        return _pynetdicom_create_meta(
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            transfer_syntax=transfer_syntax,
            **other,
        )
    return _MetaFor(str(sop_class_uid), str(sop_instance_uid), str(transfer_syntax))


def _write_file_meta_info(fp: Any, file_meta: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(file_meta, _MetaFor) and not args and not kwargs:
        fp.write(encoded_file_meta(*file_meta))
        meta_written = getattr(fp, "meta_written", None)  # a spool file wants to know
        if meta_written is not None:
            meta_written(file_meta.transfer_syntax)
    else:
        _pydicom_write_meta(fp, file_meta, *args, **kwargs)


_pydicom_write_meta: Any = None
_pynetdicom_create_meta: Any = None


def install() -> bool:
    """Memoise pynetdicom's File Meta encoding; return whether it is in place."""
    global _pydicom_write_meta, _pynetdicom_create_meta
    from pydicom import filewriter
    from pynetdicom import dimse_messages, dsutils

    if dimse_messages.write_file_meta_info is _write_file_meta_info:
        return True
    if (
        dimse_messages.write_file_meta_info is not filewriter.write_file_meta_info
        or dimse_messages.create_file_meta is not dsutils.create_file_meta
    ):
        return False
    _pydicom_write_meta = filewriter.write_file_meta_info
    _pynetdicom_create_meta = dsutils.create_file_meta
    dimse_messages.write_file_meta_info = _write_file_meta_info  # type: ignore[assignment]
    dimse_messages.create_file_meta = _create_file_meta  # type: ignore[assignment]
    return True
