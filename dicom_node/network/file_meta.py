"""The ``file_meta`` tweak: the File Meta of spooled C-STOREs, memoised encoding.

In chunked-dataset mode pynetdicom builds each spooled file's File Meta Information with
pydicom (``create_file_meta``, then ``write_file_meta_info``). :func:`install` hooks both
(pinned, like :mod:`.guard`): pydicom's encoding is memoised per SOP class, transfer
syntax and SOP Instance UID length, and the instance's UID spliced into a copy; any
other use of them goes to pydicom unchanged. With the tweak off nothing is hooked.

The File Meta records no AE titles: where an instance came from is in the node's origin
records (:mod:`dicom_node.store.origin`), which only the node writes.

The hooks install only on a pynetdicom whose ``decode_msg`` calls both names as 3.0.x
does (``tests/network/test_guards_installed.py`` fails otherwise).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple


class _MetaFor(NamedTuple):
    """What pynetdicom's File Meta for a spooled C-STORE is made of (its defaults for the
    implementation UID and version)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


_META_UID_TAG = b"\x02\x00\x03\x00UI"  # (0002,0003) Media Storage SOP Instance UID


@functools.lru_cache(maxsize=4096)
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
    meta = create_file_meta(
        sop_class_uid=UID(sop_class_uid),
        sop_instance_uid=UID(placeholder),
        transfer_syntax=UID(transfer_syntax),
    )
    _pydicom_write_meta(buf, meta)
    data = buf.getvalue()
    start = data.index(_META_UID_TAG) + 8
    end = start + int.from_bytes(data[start - 2 : start], "little")
    return data[:start], data[end:]


def encoded_file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """The File Meta group written for a C-STORE (as pydicom encodes it)."""
    head, tail = _meta_around_uid(str(sop_class_uid), str(transfer_syntax), len(sop_instance_uid))
    value = sop_instance_uid.encode("ascii")
    return head + value + b"\0" * (len(value) % 2) + tail


def _create_file_meta(
    *, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any, **other: Any
) -> Any:
    if other or not _memoise or not str(sop_instance_uid).isascii():
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
_memoise = True


def _verified(dimse_messages: Any) -> bool:
    """Whether pynetdicom builds a spooled C-STORE's File Meta as on 3.0.x, the source
    these hooks were verified on: both names called by ``DIMSEMessage.decode_msg`` (on
    the DUL thread), with the keywords :func:`_create_file_meta` takes."""
    try:
        source = inspect.getsource(dimse_messages.DIMSEMessage.decode_msg)
    except (AttributeError, OSError, TypeError):
        return False
    return all(
        text in source
        for text in (
            "write_file_meta_info(",
            "create_file_meta(",
            "sop_class_uid=",
            "sop_instance_uid=",
            "transfer_syntax=",
        )
    )


def install(memoise: bool = True) -> bool:
    """With ``memoise``, memoise the encoding of pynetdicom's File Meta; return whether
    that is in place. Without, hook nothing (hooks installed earlier in this process
    pass everything to pydicom) and return True."""
    global _pydicom_write_meta, _pynetdicom_create_meta, _memoise
    from pydicom import filewriter
    from pynetdicom import dimse_messages, dsutils

    if dimse_messages.write_file_meta_info is _write_file_meta_info or not memoise:
        _memoise = memoise
        return True
    if (
        dimse_messages.write_file_meta_info is not filewriter.write_file_meta_info
        or dimse_messages.create_file_meta is not dsutils.create_file_meta
        or not _verified(dimse_messages)
    ):
        return False
    _memoise = memoise
    _pydicom_write_meta = filewriter.write_file_meta_info
    _pynetdicom_create_meta = dsutils.create_file_meta
    dimse_messages.write_file_meta_info = _write_file_meta_info  # type: ignore[assignment]
    dimse_messages.create_file_meta = _create_file_meta  # type: ignore[assignment]
    return True
