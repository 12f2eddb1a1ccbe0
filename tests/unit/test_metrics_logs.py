"""The pieces of metrics and logs that need no server: label rules, the audit hook, the log formats, the
multi-process directory (the whole of it over loopback: tests/integration/test_metrics_served.py)."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from server.access import AuditRecord, AuditWriter, query_audit
from server.access.audit import set_observer
from server.config import load_settings
from server.logs import GunicornLogger, configure_logging, formatter
from server.metrics import (
    MULTIPROC_ENV,
    CallMetrics,
    MetricsSettings,
    StoreFigures,
    call_ended,
    call_started,
    exposition,
    install,
    known_operations,
    outcome_label,
    prepare_multiprocess_dir,
)


@pytest.mark.parametrize(("outcome", "label"), [
    ("ok", "ok"), ("Client.Authentication", "Client.Authentication"), ("AE:207", "AE:207"), ("AR:200", "AR:200"),
    ("408 header timeout", "408 header timeout"), ("InvalidHerIdSupplied", "InvalidHerIdSupplied"),
    ("01018012345", "other"), ("010180 12345", "other"), ("Client 1234", "other"), ("x" * 49, "other"),
    ("Kari\nNordmann", "other"), ("", "other"), ("ok\x00", "other"), ('ok"}', "other"),
])
def test_outcome_labels_keep_only_what_looks_like_a_code(outcome: str, label: str) -> None:
    assert outcome_label(outcome) == label


def test_known_operations_come_from_the_faces_own_tables() -> None:
    assert {"getPerson", "searchPerson", "ping"} <= known_operations("soap-preg")
    assert {"Ping", "GetCommunicationPartyDetails"} <= known_operations("soap-ar")
    assert "GetPatientGPDetails" in known_operations("soap-flr")
    assert "HentPerson" in known_operations("soap-hpr")
    assert "GetAreasForHPRNumber" in known_operations("soap-krk")
    assert known_operations("hl7") == {"QBP^Q22", "QBP^Q23", "QBP^Q24", "QCN^J01", "QRY^A19"}
    assert "filematch.submit" in known_operations("filematch")
    assert known_operations("http-front") == frozenset()


def _sample(text: str, name: str, **labels: str) -> float:
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_audit_writer_counts_and_logs_every_call(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    metrics = install(MetricsSettings())
    assert isinstance(metrics, CallMetrics) and metrics.count
    before, _ = exposition(None, {"version": "t"})
    writer = AuditWriter(engine, mode="sync")
    caplog.set_level(logging.INFO, logger="pregbridge.request")
    token = call_started("req-1")
    try:
        writer.write(AuditRecord.now(account="epj", face="soap-preg", operation="getPerson", outcome="ok",
                                     asked=["01018012345"]))
    finally:
        call_ended(token)
    writer.write(AuditRecord.now(account="01018012345", face="soap-preg", operation="x01018012345",
                                 outcome="Client"))
    writer.close()
    after, _ = exposition(None, {"version": "t"})
    for labels, n in (({"face": "soap-preg", "operation": "getPerson", "outcome": "ok"}, 1),
                      ({"face": "soap-preg", "operation": "other", "outcome": "Client"}, 1)):
        assert _sample(after.decode(), "pregbridge_requests_total", **labels) - _sample(
            before.decode(), "pregbridge_requests_total", **labels) == n
    timed = {"face": "soap-preg", "operation": "getPerson"}
    assert _sample(after.decode(), "pregbridge_request_duration_seconds_count", **timed) - _sample(
        before.decode(), "pregbridge_request_duration_seconds_count", **timed) == 1  # the untimed call is not
    assert b"01018012345" not in after and b'version="t"' in after
    lines = [r for r in caplog.records if r.name == "pregbridge.request"]
    assert [(r.face, r.operation, r.account, r.outcome, r.request_id) for r in lines] == [  # type: ignore[attr-defined]
        ("soap-preg", "getPerson", "epj", "ok", "req-1"), ("soap-preg", "x***********", "***********", "Client", "-")]
    assert lines[0].duration_ms >= 0 and lines[1].duration_ms is None  # type: ignore[attr-defined]


def test_a_failing_observer_does_not_fail_the_call(engine: Engine) -> None:
    class Broken(CallMetrics):
        def __init__(self) -> None:
            super().__init__(count=False)

        def _log(self, *args: object) -> None:  # type: ignore[override]
            raise RuntimeError("boom")

    writer = AuditWriter(engine, mode="sync")
    set_observer(Broken())
    try:
        logging.getLogger("pregbridge.request").setLevel(logging.INFO)
        writer.write(AuditRecord.now(account="a", face="hl7", operation="QBP^Q23", outcome="AA"))
        assert [r.operation for r in query_audit(engine, account="a")] == ["QBP^Q23"]
    finally:
        logging.getLogger("pregbridge.request").setLevel(logging.NOTSET)
        install(MetricsSettings())
        writer.close()


def test_store_figures_are_read_once_per_cache_period() -> None:
    reads = []
    figures = StoreFigures(lambda: reads.append(1) or {"n": len(reads)}, cache_seconds=60)
    assert figures.get() == {"n": 1} and figures.get() == {"n": 1} and len(reads) == 1
    fresh = StoreFigures(lambda: reads.append(1) or {"n": len(reads)}, cache_seconds=0)
    assert fresh.get() != fresh.get()


def _capture(format: str) -> tuple[io.StringIO, logging.Handler]:
    configure_logging(format, "info")
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream, handler


@pytest.fixture
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    logging.captureWarnings(False)
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.usefixtures("_restore_logging")
def test_json_lines_parse_and_gunicorn_writes_through_the_same_handler() -> None:
    stream, _ = _capture("json")
    logging.getLogger("pregbridge.request").info("request face=%s", "hl7", extra={"face": "hl7", "duration_ms": 1.5})

    class Cfg:  # the parts of gunicorn's Config its Logger.setup reads
        errorlog, accesslog, loglevel, syslog, capture_output, disable_redirect_access_to_syslog = (
            "-", None, "info", False, False, False)
        logconfig = logconfig_dict = logconfig_json = None
        access_log_format = ""
        user, group = 0, 0

        def __getattr__(self, name: str) -> object:
            return None

    GunicornLogger(Cfg()).info("Booting worker with pid: %s", 42)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(p["logger"], p["level"], p["message"]) for p in lines] == [
        ("pregbridge.request", "INFO", "request face=hl7"), ("gunicorn.error", "INFO", "Booting worker with pid: 42")]
    assert lines[0]["face"] == "hl7" and lines[0]["duration_ms"] == 1.5 and "time" in lines[0] and "process" in lines[0]
    assert not logging.getLogger("gunicorn.error").handlers and logging.getLogger("gunicorn.error").propagate


@pytest.mark.usefixtures("_restore_logging")
def test_text_format_and_bad_values() -> None:
    stream, _ = _capture("text")
    logging.getLogger("x").warning("plain")
    assert stream.getvalue().rstrip().endswith("WARNING x: plain")
    with pytest.raises(ValueError, match="log.format must be one of text, json"):
        formatter("xml")
    with pytest.raises(ValueError, match="log.level"):
        configure_logging("text", "loud")


def test_log_and_metrics_settings_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[log]\nformat = "json"\nlevel = "warning"\n[metrics]\nenabled = false\nhl7_port = 9575\n')
    s = load_settings(config, env={})
    assert (s.log.format, s.log.level, s.metrics.enabled, s.metrics.hl7_port) == ("json", "warning", False, 9575)
    s = load_settings(None, env={"PREGBRIDGE_METRICS_ENABLED": "true", "PREGBRIDGE_LOG_FORMAT": "json"})
    assert s.metrics.enabled is True and s.log.format == "json" and s.metrics.cache_seconds == 15
    with pytest.raises(ValueError, match=r"PREGBRIDGE_METRICS_ENABLED.*expected true or false"):
        load_settings(None, env={"PREGBRIDGE_METRICS_ENABLED": "maybe"})
    config.write_text("[metrics]\nhl7_port = 70000\n")
    with pytest.raises(ValueError, match=r"metrics.hl7_port = 70000: expected an integer from 0 to 65535"):
        load_settings(config, env={})


def test_the_multiprocess_directory_is_emptied_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "prom"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert prepare_multiprocess_dir() == given
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    monkeypatch.delenv(MULTIPROC_ENV)
    made = prepare_multiprocess_dir()
    try:
        assert made.is_dir() and not any(made.iterdir()) and (made.stat().st_mode & 0o777) == 0o700
    finally:
        from server.metrics import remove_multiprocess_dir

        remove_multiprocess_dir(made)
        os.environ.pop(MULTIPROC_ENV, None)
    assert not made.exists()


def _get(app: object, path: str) -> tuple[str, bytes]:
    got: list[str] = []
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, headers: got.append(status)))  # type: ignore[operator]
    return got[0], body


def test_sync_position_and_lag_are_exposed(engine: Engine, tmp_path: Path) -> None:
    from dataclasses import replace

    from server.bootstrap import sync_figures
    from server.http.health import health_app
    from store.state import set_feed_position, set_state

    settings = load_settings(None, env={})
    assert sync_figures(settings, engine) is None  # no upstream configured: no sync figures
    settings = replace(settings, upstream=replace(settings.upstream, base_url="http://127.0.0.1:9"))
    with engine.begin() as conn:
        set_feed_position(conn, 5)
        set_state(conn, "sync.upstream_latest", "12")
    app = health_app(engine, metrics=MetricsSettings(cache_seconds=0), sync_status=sync_figures(settings, engine))
    status, text = _get(app, "/metrics")
    assert status == "200 OK"
    figures = {name: _sample(text.decode(), name) for name in (
        "pregbridge_sync_position", "pregbridge_sync_upstream_latest", "pregbridge_sync_lag_events",
        "pregbridge_sync_running", "pregbridge_feed_position", "pregbridge_store_up")}
    assert figures == {"pregbridge_sync_position": 5, "pregbridge_sync_upstream_latest": 12,
                       "pregbridge_sync_lag_events": 7, "pregbridge_sync_running": 0, "pregbridge_feed_position": 5,
                       "pregbridge_store_up": 1}
    assert _sample(text.decode(), "pregbridge_filematch_jobs", status="done") == 0  # every status, also at none


def test_a_store_that_does_not_answer(tmp_path: Path) -> None:
    from server.http.health import health_app
    from store.engine import make_engine

    gone = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.sqlite'}")
    app = health_app(gone, metrics=MetricsSettings(cache_seconds=0))
    status, body = _get(app, "/health")
    assert status.startswith("503") and json.loads(body)["status"] == "unavailable"
    status, text = _get(app, "/metrics")
    assert status == "200 OK" and _sample(text.decode(), "pregbridge_store_up") == 0
    assert _get(health_app(gone, metrics=MetricsSettings(enabled=False)), "/metrics")[0].startswith("404")
    gone.dispose()
