"""The File Meta of spooled C-STOREs: the association's AE titles, and memoised encoding.

In chunked-dataset mode pynetdicom builds each spooled file's File Meta Information with
pydicom (``create_file_meta``, then ``write_file_meta_info``). :func:`install` hooks both
(pinned, like :mod:`.guard`):

- always, the File Meta records the association's AE titles, (0002,0017) Sending
  Application Entity Title (the calling AE) and (0002,0018) Receiving Application Entity
  Title (the called AE), as PS3.10 7.1 defines them; start-up reconciliation reads them
  back for a file whose index row was lost (:mod:`dicom_node.store.reconcile`);
- with ``memoise`` (the ``file_meta`` tweak), pydicom's encoding is memoised per SOP
  class, transfer syntax, SOP Instance UID length and AE titles, and the instance's UID
  spliced into a copy; any other use of them goes to pydicom unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, NamedTuple


class _MetaFor(NamedTuple):
    """What pynetdicom's File Meta for a spooled C-STORE is made of (its defaults for the
    implementation UID and version), and the association's calling and called AE titles
    ("" leaves one out)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    ae_titles: tuple[str, str] = ("", "")


_META_UID_TAG = b"\x02\x00\x03\x00UI"  # (0002,0003) Media Storage SOP Instance UID
_AE_TITLES = "_dicom_node_file_meta_ae_titles"  # attribute memoising them per association


def _valid_ae(title: Any) -> str:
    """``title`` stripped if it is a valid AE value (1-16 characters of the default
    repertoire, no backslash), else "" (left out: the File Meta must stay valid)."""
    text = str(title or "").strip()
    ok = 0 < len(text) <= 16 and all(" " <= c <= "~" and c != "\\" for c in text)
    return text if ok else ""


def ae_titles(assoc: Any) -> tuple[str, str]:
    """The calling and called AE titles of ``assoc`` as the File Meta records them
    (worked out once per association)."""
    titles = getattr(assoc, _AE_TITLES, None)
    if titles is None:
        requestor = getattr(assoc, "requestor", None)
        primitive = getattr(requestor, "primitive", None)
        titles = (
            _valid_ae(getattr(requestor, "ae_title", "")),
            _valid_ae(getattr(primitive, "called_ae_title", "")),
        )
        with contextlib.suppress(AttributeError):  # else: worked out each time
            setattr(assoc, _AE_TITLES, titles)
    return titles


_NO_TITLES = ("", "")


def _current_ae_titles() -> tuple[str, str]:
    """The AE titles of the association whose DUL thread is running (pynetdicom builds a
    C-STORE's File Meta there); none on any other thread."""
    assoc = getattr(threading.current_thread(), "assoc", None)
    if assoc is None:
        return _NO_TITLES
    return getattr(assoc, _AE_TITLES, None) or ae_titles(assoc)


def _add_ae_titles(meta: Any, titles: tuple[str, str]) -> Any:
    sending_ae, receiving_ae = titles
    if sending_ae:
        meta.SendingApplicationEntityTitle = sending_ae
    if receiving_ae:
        meta.ReceivingApplicationEntityTitle = receiving_ae
    return meta


@functools.lru_cache(maxsize=4096)
def _meta_around_uid(
    sop_class_uid: str, transfer_syntax: str, uid_length: int, titles: tuple[str, str]
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
    _pydicom_write_meta(buf, _add_ae_titles(meta, titles))
    data = buf.getvalue()
    start = data.index(_META_UID_TAG) + 8
    end = start + int.from_bytes(data[start - 2 : start], "little")
    return data[:start], data[end:]


def encoded_file_meta(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    ae_titles: tuple[str, str] = _NO_TITLES,
) -> bytes:
    """The File Meta group written for a C-STORE (as pydicom encodes it), with the
    calling and called ``ae_titles`` ("" leaves one out)."""
    head, tail = _meta_around_uid(
        str(sop_class_uid), str(transfer_syntax), len(sop_instance_uid), ae_titles
    )
    value = sop_instance_uid.encode("ascii")
    return head + value + b"\0" * (len(value) % 2) + tail


def _create_file_meta(
    *, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any, **other: Any
) -> Any:
    titles = _current_ae_titles()
    if other or not _memoise or not str(sop_instance_uid).isascii():
        meta = _pynetdicom_create_meta(
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            transfer_syntax=transfer_syntax,
            **other,
        )
        return _add_ae_titles(meta, titles)
    return _MetaFor(str(sop_class_uid), str(sop_instance_uid), str(transfer_syntax), titles)


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


def install(memoise: bool = True) -> bool:
    """Record the AE titles in pynetdicom's File Meta, and with ``memoise`` memoise its
    encoding; return whether the hooks are in place."""
    global _pydicom_write_meta, _pynetdicom_create_meta, _memoise
    from pydicom import filewriter
    from pynetdicom import dimse_messages, dsutils

    if dimse_messages.write_file_meta_info is _write_file_meta_info:
        _memoise = memoise
        return True
    if (
        dimse_messages.write_file_meta_info is not filewriter.write_file_meta_info
        or dimse_messages.create_file_meta is not dsutils.create_file_meta
    ):
        return False
    _memoise = memoise
    _pydicom_write_meta = filewriter.write_file_meta_info
    _pynetdicom_create_meta = dsutils.create_file_meta
    dimse_messages.write_file_meta_info = _write_file_meta_info  # type: ignore[assignment]
    dimse_messages.create_file_meta = _create_file_meta  # type: ignore[assignment]
    return True
