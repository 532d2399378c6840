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

import logging
import os

log = logging.getLogger(__name__)

ENV = "DICOM_NODE_TWEAKS"
# name -> what it does (see each module)
TWEAKS = {
    "spool": "C-STORE datasets spooled straight into the store's incoming/ (spool.py)",
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


def install(on: frozenset[str]) -> frozenset[str]:
    """Apply the tweaks in ``on``, and the spool's tracking of received datasets (always);
    return the tweaks applied. One that did not install (pynetdicom differs from what it
    was verified on) is logged as an error and left out: stock pynetdicom does its work."""
    from pynetdicom import __version__ as pynetdicom_version

    from dicom_node.network import contexts, inline, loop_delay, responses, spool

    failed = set()
    if "inline" in on and not inline.supported():
        failed.add("inline")
    if "loop_delay" in on and not loop_delay.check():
        failed.add("loop_delay")
    if "contexts" in on and not contexts.install():  # ~170 contexts copied cheaply
        failed.add("contexts")
    if "responses" in on and not responses.install():  # C-STORE-RSPs encoded once
        failed.add("responses")
    # Always: received datasets are recorded against their association and removed
    # if it ends before they are served; the tweak decides only where they are written.
    if not spool.install(into_store="spool" in on):
        log.error("pynetdicom %s: received datasets NOT tracked", pynetdicom_version)
        failed |= {"spool"} & on
    for name in sorted(failed):
        log.error("pynetdicom %s: tweak %s NOT installed", pynetdicom_version, name)
    on = on - failed
    log.info("pynetdicom tweaks: %s", ", ".join(sorted(on)) or "none")
    return on
