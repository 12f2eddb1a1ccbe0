"""The KRK face (the contact register of the kommuneoverlege function): IKrkService on SOAP 1.1 and 1.2."""

from server.soap.krk.app import build_krk_app, build_krk_app_for

__all__ = ["build_krk_app", "build_krk_app_for"]
