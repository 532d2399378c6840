"""The node's HTTP face: DICOMweb, health, readiness and Prometheus metrics."""
