"""Routing: which rule applies to a completed group, and what it asks for.

``facts`` turns headers (or index rows) into :class:`GroupFacts`; ``engine`` evaluates
the ordered rules into :class:`RouteDecision` objects plus a per-rule trace;
``explain`` renders that trace for ``dicom-node route explain``.
"""

from dicom_node.routing.engine import RouteDecision, RoutingResult, RuleTrace, evaluate
from dicom_node.routing.facts import GroupFacts, InstanceFacts, SeriesFacts

__all__ = [
    "GroupFacts",
    "InstanceFacts",
    "RouteDecision",
    "RoutingResult",
    "RuleTrace",
    "SeriesFacts",
    "evaluate",
]
