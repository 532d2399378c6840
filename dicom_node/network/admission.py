"""Which A-ASSOCIATE-RQs the Storage SCP accepts (pynetdicom's ``EVT_REQUESTED``), and
how it refuses the others: an A-ASSOCIATE-RJ with the result, source and reason of
PS3.8 9.3.4, a log line, and ``dicom_node_associations_rejected_total`` by reason.

A peer at its limit of associations (``max_associations_per_peer``), and the node at its
own (``max_associations``), log one WARNING per episode, not one per rejection: a sender
retrying in a loop must not flood the log."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dicom_node import metrics
from dicom_node.network.waiting import QUIET_AFTER, WaitingConnections
from dicom_node.settings.root import NodeConfig

log = logging.getLogger(__name__)

# PS3.7 A.2.1: the only Application Context Name of DICOM
DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

# A-ASSOCIATE-RJ (result, source, reason): PS3.8 9.3.4
TRANSIENT_LOCAL_LIMIT = (0x02, 0x03, 0x02)  # transient, service provider (presentation)
NO_REASON, APPLICATION_CONTEXT_NOT_SUPPORTED = 0x01, 0x02  # permanent, service user
CALLING_AE_NOT_RECOGNISED, CALLED_AE_NOT_RECOGNISED = 0x03, 0x07


class Episodes:
    """Whether a rejection for a key starts an episode: none for that key in the last
    :data:`QUIET_AFTER` seconds. Keys quiet that long are forgotten."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for stale in [k for k, t in self._last.items() if now - t > QUIET_AFTER]:
                del self._last[stale]
            new = key not in self._last
            self._last[key] = now
            return new


class Admission:
    """The checks of one server's ``EVT_REQUESTED``."""

    def __init__(self, config: NodeConfig, connections: WaitingConnections) -> None:
        self.config = config
        self.connections = connections
        self.peer_episodes = Episodes()
        self.local_episodes = Episodes()

    def accept(self, assoc: Any) -> bool:
        """Whether ``assoc`` goes on to negotiate; if not, it was rejected and ended."""
        rq = assoc.requestor.primitive
        called = str(rq.called_ae_title).strip()
        calling = str(rq.calling_ae_title).strip()
        host = assoc.requestor.address
        refused = self.connections.admit(assoc)
        if refused == "peer_limit":
            self._peer_limit(calling, host)
        elif refused is not None:
            self._local_limit(calling, host)
        if refused is not None:
            metrics.ASSOCIATIONS_REJECTED.labels(refused).inc()
            # rejected-transient by the service provider (presentation), as pynetdicom's
            # own limit does: the sender may try again later
            assoc.acse.send_reject(*TRANSIENT_LOCAL_LIMIT)
            assoc.kill()
            return False
        refusal = self._refusal(rq, called, calling, host)
        if refusal is None:
            return True
        why, reason, diagnostic = refusal
        log.warning("rejecting association from %s@%s to %r: %s", calling, host, called, why)
        metrics.ASSOCIATIONS_REJECTED.labels(reason).inc()
        # Rejected-permanent by the service user, as pynetdicom's own checks do; kill()
        # waits until the A-ASSOCIATE-RJ went out and the peer closed.
        assoc.acse.send_reject(0x01, 0x01, diagnostic)
        assoc.kill()
        return False

    def _refusal(
        self, rq: Any, called: str, calling: str, host: str
    ) -> tuple[str, str, int] | None:
        """Why the request ``rq`` is refused for good (what to log, the metric's reason,
        the A-ASSOCIATE-RJ's reason), or ``None``."""
        if not rq.presentation_context_definition_list:
            # PS3.8 9.3.2 requires one or more; pynetdicom would accept the association
            # with nothing negotiated and hold it until the network timeout
            return "no presentation context", "no_presentation_context", NO_REASON
        name = rq.application_context_name
        if name != DICOM_APPLICATION_CONTEXT:
            # PS3.8 7.1.1.2; pynetdicom accepts any name, or none, and answers with DICOM's
            return (
                f"application context name {name!r} not supported"
                if name
                else "no application context name",
                "application_context_not_supported",
                APPLICATION_CONTEXT_NOT_SUPPORTED,
            )
        ae = self.config.ae(called)
        if ae is None:
            return "called AE not served", "called_ae_unknown", CALLED_AE_NOT_RECOGNISED
        if not ae.allows(calling, host):
            return "calling AE not allowed", "calling_ae_not_allowed", CALLING_AE_NOT_RECOGNISED
        return None

    def _local_limit(self, calling: str, host: str) -> None:
        if self.local_episodes.first("all"):
            log.warning(
                "rejecting associations from %s@%s and any other: %d associations already "
                "(max_associations); more rejections are counted in "
                'dicom_node_associations_rejected_total{reason="local_limit"}',
                calling,
                host,
                self.config.max_associations,
            )
        else:
            log.debug("rejecting association from %s@%s: max_associations", calling, host)

    def _peer_limit(self, calling: str, host: str) -> None:
        limit = self.config.associations_per_peer()
        if self.peer_episodes.first(host):
            log.warning(
                "rejecting associations from %s@%s: %d associations from %s already "
                "(max_associations_per_peer); more rejections are counted in "
                'dicom_node_associations_rejected_total{reason="peer_limit"}',
                calling,
                host,
                limit,
                host,
            )
        else:
            log.debug("rejecting association from %s@%s: max_associations_per_peer", calling, host)
