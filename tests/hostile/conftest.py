"""Fixtures the hostile cases share with the integration tests (imported, so that each face's served
process is built one way)."""

from tests.integration.test_hl7_mllp import server  # noqa: F401 - the MLLP listener on SQLite and PostgreSQL
