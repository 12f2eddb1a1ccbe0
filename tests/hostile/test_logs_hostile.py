"""A client's X-Request-Id reaches the log escaped, cut and without an identity number, on the served PREG
face over real HTTP (SQLite and PostgreSQL); the client still gets its own id back, and the next request is
answered."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from tests.factories import number
from tests.integration.preg_support import CT11, SPYNE_WARNINGS, PregServer, backend_url, body_child, running_preg

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

FNR = number()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def preg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work = tmp_path_factory.mktemp(f"hostile-logs-{request.param}")
    with backend_url(request.param, work) as url, running_preg(url, work) as srv:
        yield srv


@pytest.mark.parametrize("rid", [FNR, f"req-{FNR}-1", f"{FNR[:6]}.{FNR[6:]}", "a" * 64])
def test_a_request_id_is_logged_masked_and_returned_as_sent(preg: PregServer, caplog: pytest.LogCaptureFixture,
                                                            rid: str) -> None:
    caplog.set_level(logging.INFO)
    refused = preg.post(b"", CT11, headers={"X-Request-Id": rid})  # an empty body: refused by the guard, logged
    assert refused.status == 500 and refused.headers["x-request-id"] == rid  # the client's own id, as sent
    text = caplog.text
    assert "refused SOAP request" in text and "Traceback" not in text
    assert FNR not in text and not re.search(r"\d(?:[ .\-]?\d){10,}", text)
    if rid[0].isdigit():
        assert "*" * 11 in text
    answer = preg.call("1.1", "<p:ping/>")
    assert answer.status == 200 and body_child(answer.xml()).findtext("{*}status") == "OK"
