"""Which guarded pynetdicom tweaks the node applies (``DICOM_NODE_TWEAKS``).

Each tweak is a patch of pynetdicom internals kept only because a same-run A/B in
``benchmarks/receive.py --ab`` measured it worth >= 15% of node throughput. The variable
turns them off for such an A/B or to rule them out when chasing a fault:

- unset or ``all``: every tweak;
- ``none``: stock pynetdicom (the node's guards of :mod:`.guard` still apply);
- ``a,b``: only the named ones; ``-a,-b``: all but the named ones.

An unknown name is refused at start (a typo must not silently measure the wrong thing).
"""

from __future__ import annotations

import os

ENV = "DICOM_NODE_TWEAKS"
# name -> what it does (see each module)
TWEAKS = {
    "spool": "C-STORE datasets spooled straight into the store's incoming/ (spool.py)",
    "file_meta": "File Meta of spooled C-STOREs memoised (file_meta.py)",
    "responses": "C-STORE-RSPs encoded once per SOP class (responses.py)",
    "contexts": "cheap deepcopy of the ~170 supported contexts (contexts.py)",
    "inline": "C-STOREs served on the DUL thread (inline.py)",
    "loop_delay": "DUL loop pause short while PDUs arrive, long when idle (loop_delay.py)",
}


def enabled(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The tweaks to apply, from ``DICOM_NODE_TWEAKS``; ValueError naming an unknown one."""
    value = (environ if environ is not None else os.environ).get(ENV, "all").strip()
    if value in ("", "all"):
        return frozenset(TWEAKS)
    if value == "none":
        return frozenset()
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n.lstrip("-") for n in names if n.lstrip("-") not in TWEAKS]
    if unknown:
        raise ValueError(
            f"{ENV}: unknown tweak(s) {', '.join(unknown)}; known: {', '.join(TWEAKS)}, all, none"
        )
    if all(n.startswith("-") for n in names):
        return frozenset(TWEAKS) - {n[1:] for n in names}
    if any(n.startswith("-") for n in names):
        raise ValueError(f"{ENV}: give either names or -names, not both")
    return frozenset(names)
