"""`durable-agent`: a terminal client of the gateway (HTTP only)."""
