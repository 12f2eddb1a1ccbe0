"""HTTP endpoints that are not SOAP: health (and later Filematch upload and metrics)."""

from server.http.health import health_app

__all__ = ["health_app"]
