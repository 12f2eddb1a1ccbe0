"""HTTP endpoints that are not SOAP: Filematch (server/http/filematch.py), health and metrics (health.py)."""

from server.http.health import health_app

__all__ = ["health_app"]
