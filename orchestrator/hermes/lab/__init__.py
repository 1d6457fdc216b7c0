"""Local lab: podman containers standing in for the estate's hosts."""
