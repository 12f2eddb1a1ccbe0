"""The HPR (Helsepersonellregisteret) face: NHN's IHPR2Service on SOAP 1.1 and 1.2, from the store."""

from server.soap.hpr.app import build_hpr_app, build_hpr_app_for

__all__ = ["build_hpr_app", "build_hpr_app_for"]
