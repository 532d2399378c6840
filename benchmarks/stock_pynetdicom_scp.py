"""A stock pynetdicom Storage SCP (no dicom-node tweak): each received dataset is written
to a file, as a plain pynetdicom receiver would. The peer ``receive.py`` compares against.

    python benchmarks/stock_pynetdicom_scp.py PORT OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        return 0x0000

    ae = AE(ae_title="STOCK")
    ae.maximum_pdu_size = 1_048_576  # as the node's default
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    main()
