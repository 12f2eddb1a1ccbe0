"""adapters/hl7.py: ER7 escaping, CX with OIDs, PID from (masked) persons, QPD-3 parameters."""

from __future__ import annotations

import datetime as dt

import hl7
import pytest

from adapters.hl7 import (
    ParameterError,
    cx,
    domain_of,
    escape,
    hjelpenummer_request,
    parse_date,
    pid_segment,
    query_parameters,
    segment,
)
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile
from store.document import from_document
from store.model import Identifier, IdentifierStatus, Meta
from tests.factories import meta, person_doc

FNR, DNR = "17858026105", "57858036757"


def person(**kw):  # type: ignore[no-untyped-def]
    doc = person_doc("p", identifiers=[
        {"number": FNR, "kind": "fnr", "status": "iBruk", **meta()},
        {"number": DNR, "kind": "dnr", "status": "opphoert", **meta(False, "1999-01-01", "2001-01-01")}], **kw)
    return from_document(doc)


def field(seg: str, n: int) -> str:
    parts = seg.split("|")
    return parts[n] if n < len(parts) else ""


def test_escape_every_delimiter_and_round_trip_with_python_hl7() -> None:
    value = "A|B^C~D\\E&F\rG"
    assert escape(value) == "A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F\\X0D\\G"
    assert escape(None) == "" and escape(12) == "12"
    msg = hl7.parse("MSH|^~\\&|A\rNTE|1||" + escape("x|y^z~w&v\\u"))
    assert msg.unescape(str(msg.segment("NTE")[3])) == "x|y^z~w&v\\u"


def test_segment_trims_trailing_empty_fields() -> None:
    assert segment("QAK", "t", "OK", "", "") == "QAK|t|OK"
    assert segment("PV1") == "PV1"


def test_cx_with_authority_oid_type_and_expiry() -> None:
    assert cx(Identifier(FNR, "fnr")) == f"{FNR}^^^FNR&2.16.578.1.12.4.1.4.1&ISO^NNNOR"
    ceased = Identifier(DNR, "dnr", IdentifierStatus.CEASED, Meta(False, None, dt.date(2001, 1, 1)))
    assert cx(ceased) == f"{DNR}^^^DNR&2.16.578.1.12.4.1.4.2&ISO^NNNOR^^^20010101"
    assert cx(Identifier("81234567890", "fh")) == "81234567890^^^FHN&2.16.578.1.12.4.1.4.3&ISO^NI"
    assert cx(Identifier("01450012345", "hnr")) == "01450012345^^^HNR^PI"


@pytest.mark.parametrize(("authority", "kind"), [("FNR", "fnr"), ("&2.16.578.1.12.4.1.4.2&ISO", "dnr"),
                                                 ("fhn&2.16.578.1.12.4.1.4.3&ISO", "fh"), ("HNR", "hnr")])
def test_domain_of(authority: str, kind: str) -> None:
    d = domain_of(authority)
    assert d is not None and d.kind == kind
    assert domain_of("NOWHERE") is None and domain_of("&1.2.3&ISO") is None


def test_pid_full_profile() -> None:
    pid = pid_segment(apply_profile(person(given="Åse", family="Ødegård|Berg", gender="kvinne"),
                                    BUILTIN_PROFILES["full"]), 2)
    assert field(pid, 1) == "2"
    assert field(pid, 3).split("~") == [f"{FNR}^^^FNR&2.16.578.1.12.4.1.4.1&ISO^NNNOR",
                                        f"{DNR}^^^DNR&2.16.578.1.12.4.1.4.2&ISO^NNNOR^^^20010101"]
    assert field(pid, 5) == "Ødegård\\F\\Berg^Åse^^^^^L"
    assert field(pid, 7) == "19800517" and field(pid, 8) == "F"
    assert field(pid, 11) == "Storgata 1^^OSLO^^0150^NOR^H^030101^0301"
    assert field(pid, 29) == "" and field(pid, 30) == "N"


def test_pid_masked_address_and_withheld_elements() -> None:
    p = person(protection="strengtFortrolig")
    pid = pid_segment(apply_profile(p, BUILTIN_PROFILES["full"]))
    assert field(pid, 11) == "Sperret adresse^^^^^^H"  # kommune blanked too for strengt fortrolig
    assert field(pid, 3).count("~") == 1
    basis = pid_segment(apply_profile(p, BUILTIN_PROFILES["basis"]))
    assert field(basis, 3) == f"{FNR}^^^FNR&2.16.578.1.12.4.1.4.1&ISO^NNNOR"  # no history: ceased DNR withheld
    bare = AccessProfile("bare", "*", frozenset({"identifiers"}), "ugradert")
    pid = pid_segment(apply_profile(p, bare))
    assert [field(pid, i) for i in (5, 7, 8, 11, 29, 30)] == [""] * 6


def test_pid_death_and_kinds_filter() -> None:
    doc = person_doc("d", status="doed", death=[{"date": "2020-02-02", **meta()}])
    pid = pid_segment(apply_profile(from_document(doc), BUILTIN_PROFILES["full"]), kinds=["dnr"], demographics=True)
    assert field(pid, 3) == "" and field(pid, 29) == "20200202" and field(pid, 30) == "Y"
    only_ids = pid_segment(apply_profile(person(), BUILTIN_PROFILES["full"]), kinds=["dnr"], demographics=False)
    assert only_ids == f"PID|1||{DNR}^^^DNR&2.16.578.1.12.4.1.4.2&ISO^NNNOR^^^20010101"


def test_parse_date() -> None:
    assert parse_date("19800517") == (dt.date(1980, 5, 17), 1980)
    assert parse_date("198005171230") == (dt.date(1980, 5, 17), 1980)
    assert parse_date("1980") == (None, 1980)
    for bad in ("19801317", "80", "abcd1234", ""):
        with pytest.raises(ValueError):
            parse_date(bad)


def test_query_parameters() -> None:
    q = query_parameters([("@PID.5.1.1", "Ærøe"), ("@PID.5.2", "Kari"), ("@PID.7", "19750302"), ("@PID.8", "F"),
                          ("@PID.11.5", "0150"), ("@PID.3.1", "")])
    c = q.criteria
    assert q.identifier is None
    assert (c.family, c.given, c.birth_date, c.birth_year, c.gender, c.postnummer) == (
        "Ærøe", "Kari", dt.date(1975, 3, 2), None, "kvinne", "0150")
    assert query_parameters([("@PID.3.1", FNR)]).identifier == FNR
    assert query_parameters([("@PID.7", "1990"), ("@PID.8", "U")]).criteria.birth_year == 1990
    with pytest.raises(ParameterError) as err:
        query_parameters([("@PID.5.1", "x"), ("@PID.19", "1")])
    assert err.value.repetition == 2 and err.value.hl7_error_code == "103"
    with pytest.raises(ParameterError) as err:
        query_parameters([("@PID.8", "X")])
    assert err.value.hl7_error_code == "103"
    with pytest.raises(ParameterError) as err:
        query_parameters([("@PID.7", "1990-01-01")])
    assert err.value.hl7_error_code == "102"


def test_hjelpenummer_request() -> None:
    r = hjelpenummer_request([("@PID.5.1", "Ukjent"), ("@PID.5.2", "Åsmund"), ("@PID.7", "20260101"), ("@PID.8", "M"),
                              ("@PID.11.1", "Sjøgata 3"), ("@PID.11.5", "9008"), ("@PID.11.9", "5501")])
    assert (r.family, r.given, r.gender, r.birth_date, r.street, r.house_number, r.postnummer, r.kommune) == (
        "Ukjent", "Åsmund", "mann", dt.date(2026, 1, 1), "Sjøgata", "3", "9008", "5501")
    with pytest.raises(ParameterError) as err:
        hjelpenummer_request([("@PID.5.1", "Ukjent"), ("@PID.7", "20260101"), ("@PID.8", "M")])
    assert err.value.hl7_error_code == "101"
    with pytest.raises(ParameterError):
        hjelpenummer_request([("@PID.5.1", "U"), ("@PID.5.2", "A"), ("@PID.7", "2026"), ("@PID.8", "M")])
    with pytest.raises(ParameterError):
        hjelpenummer_request([("@PID.5.1", "U"), ("@PID.5.2", "A"), ("@PID.7", "20260101"), ("@PID.8", "U")])
