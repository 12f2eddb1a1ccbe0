"""Persontjenesten, NHN's person register, as the store's source: the client (``upstream.client``), the mapping
of its ``Person`` to the store's person (``upstream.mapping``), the sync (``upstream.sync``) and a fake of the
service for tests and demos (``upstream.fake``). Imports ``store``; only the server's composition and CLI
import it. See docs/upstream.md."""
