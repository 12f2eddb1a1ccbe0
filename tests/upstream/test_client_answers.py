"""Hostile or broken answers from an upstream: typed errors, never a crash or a leaked body (unit tests over
httpx.MockTransport: no socket)."""

from __future__ import annotations

import httpx
import pytest

from upstream.client import PersontjenestenClient
from upstream.errors import UpstreamError, UpstreamProblem, UpstreamUnavailable
from upstream.settings import UpstreamSettings


def _client(handler) -> PersontjenestenClient:
    settings = UpstreamSettings(base_url="http://upstream.test", retries=1, backoff_initial=0.001)
    return PersontjenestenClient(settings, transport=httpx.MockTransport(handler), sleep=lambda s: None)


@pytest.mark.parametrize(("body", "kind", "words"), [
    (b"<html>proxy error</html>", UpstreamUnavailable, "not JSON"),
    (b'{"results": "many"}', UpstreamError, "not a list"),
    (b'{"results": [{"personId": "p1", "eventType": "ChangeInName"}]}', UpstreamError, "without a sequence"),
    (b'{"results": [{"sequenceNumber": "x1", "personId": "p1", "eventType": "ChangeInName"}]}', UpstreamError,
     "without a sequence"),
    (b'{"results": [{"sequenceNumber": "7", "eventType": "ChangeInName"}]}', UpstreamError, "event 7 without"),
    (b'{"results": [17]}', UpstreamError, "not an object"),
])
def test_broken_event_pages(body: bytes, kind: type[Exception], words: str) -> None:
    with _client(lambda request: httpx.Response(200, content=body)) as client:
        with pytest.raises(kind, match=words) as caught:
            client.events(1)
    assert b"proxy" not in str(caught.value).encode()


def test_event_page_without_results_is_empty_and_strings_become_numbers() -> None:
    pages = iter([b"{}", b'{"results": [{"sequenceNumber": "12", "personId": "p1", "eventType": "X"}]}'])
    with _client(lambda request: httpx.Response(200, content=next(pages))) as client:
        assert client.events(1) == []
        assert client.events(12)[0].sequence_number == 12


def test_bulk_answer_must_be_a_list_of_objects() -> None:
    with _client(lambda request: httpx.Response(200, json={"id": "p1"})) as client:
        with pytest.raises(UpstreamError, match="other than a list"):
            client.persons_by_id(["p1"], ["Name"])
    with _client(lambda request: httpx.Response(200, json=["p1"])) as client:
        with pytest.raises(UpstreamError, match="not an object"):
            client.persons_by_id(["p1"], ["Name"])


def test_problem_details_that_are_not_objects_are_still_typed() -> None:
    with _client(lambda request: httpx.Response(409, content=b"[1, 2]")) as client:
        with pytest.raises(UpstreamProblem) as caught:
            client.latest_event()
    assert caught.value.status == 409 and caught.value.problem == {} and caught.value.title is None


def test_a_problem_detail_is_not_in_the_message() -> None:
    problem = {"title": "Bad Request", "status": 400, "detail": "nin 01010112345 is not valid", "type": "about:blank"}
    with _client(lambda request: httpx.Response(400, json=problem)) as client:
        with pytest.raises(UpstreamProblem) as caught:
            client.person_by_nin("01010112345", ["Name"])
    assert "01010112345" not in str(caught.value) and caught.value.detail == problem["detail"]
    assert "'Bad Request'" in str(caught.value)


def test_requests_carry_the_contract_parameters() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[] if request.method == "POST" else {"id": "x"})

    with _client(answer) as client:
        client.persons_by_id(["a b/c", "d"], ["Name", "Birth"], include_history=True)
        client.person_by_id("a/b c", ["Name"])
    bulk, single = seen
    assert bulk.url.path == "/api/legal-basis/person/bulk-by-id"
    assert bulk.url.params.get_list("informationParts") == ["Name", "Birth"]
    assert bulk.url.params["includeHistory"] == "true" and bulk.headers["api-version"] == "2"
    assert bulk.content == b"personIds=a+b%2Fc&personIds=d"
    assert single.url.raw_path.startswith(b"/api/legal-basis/person/a%2Fb%20c?")  # one path segment
    assert "Authorization" not in single.headers  # no token endpoint configured: no credentials at all
