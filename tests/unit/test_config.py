"""Configuration: defaults < file < environment < flags; one strict loader for every section.

A wrong type, an unknown section or key, or a value out of range is a ConfigError that names the key as written
in the file, the file (or the variable, or the flag) and what is expected; the CLI prints it on one line
without a traceback and exits 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.config import DEFAULT_HTTP_PORT, ConfigError, load_settings


def _file(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "p.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def test_defaults_use_sqlite_in_the_data_dir() -> None:
    s = load_settings(env={})
    assert s.http.port == DEFAULT_HTTP_PORT
    assert s.store.database_url.startswith("sqlite:///") and s.store.database_url.endswith("var/pregbridge.sqlite")
    assert (s.log.format, s.log.level) == ("text", "info")
    assert (s.http.timeout, s.http.graceful_timeout, s.http.max_requests) == (60, 30, 0)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = _file(tmp_path, '[store]\nurl = "postgresql+psycopg://u@h/db"\n[http]\nport = 9000\nworkers = 4\n'
                          'timeout = 300\n')
    s = load_settings(cfg, env={"PREGBRIDGE_HTTP_PORT": "9100"})
    assert s.store.database_url == "postgresql+psycopg://u@h/db"
    assert (s.http.port, s.http.workers, s.http.timeout) == (9100, 4, 300)
    s = load_settings(cfg, env={"PREGBRIDGE_HTTP_PORT": "9100"}, overrides={"http.port": ("--port", 9200)})
    assert s.http.port == 9200


def test_the_environment_names_a_file_and_overrides_it(tmp_path: Path) -> None:
    cfg = _file(tmp_path, '[log]\nformat = "json"\n[access]\ntrusted_proxies = ["10.0.0.1"]\n')
    s = load_settings(env={"PREGBRIDGE_CONFIG": str(cfg), "PREGBRIDGE_LOG_LEVEL": "warning",
                           "PREGBRIDGE_TRUSTED_PROXIES": "10.1.0.0/16, 10.2.0.1", "PREGBRIDGE_HTTP_TIMEOUT": "300"})
    assert (s.log.format, s.log.level, s.http.timeout) == ("json", "warning", 300)
    assert s.access.trusted_proxies == ("10.1.0.0/16", "10.2.0.1")


def test_front_limits_from_file_and_environment(tmp_path: Path) -> None:
    cfg = _file(tmp_path, "[http]\nheader_timeout = 2\nbody_min_rate = 1000\nmax_connections_per_address = 4\n")
    s = load_settings(cfg, env={"PREGBRIDGE_HTTP_BODY_TIMEOUT": "3.5", "PREGBRIDGE_HTTP_MAX_CONNECTIONS": "50"})
    assert (s.http.header_timeout, s.http.body_timeout, s.http.body_min_rate) == (2.0, 3.5, 1000)
    assert (s.http.max_connections, s.http.max_connections_per_address) == (50, 4)
    assert isinstance(s.http.header_timeout, float)
    defaults = load_settings(env={}).http
    assert (defaults.header_timeout, defaults.body_timeout, defaults.max_connections_per_address) == (10.0, 20.0, 100)


def test_every_section_is_read_by_the_one_loader(tmp_path: Path) -> None:
    cfg = _file(tmp_path, '[hl7]\nport = 2600\nreuse_port = true\npeer_match = "sender"\n'
                          '[hl7.peers]\n"MIRTH^AHUS" = "mirth"\n'
                          '[upstream]\nbase_url = "http://127.0.0.1:1"\nparallelism = 2\n'
                          '[filematch]\nmax_field = 2048\n[preg]\nmax_body = 100\n'
                          '[access]\naudit_mode = "sync"\n')
    s = load_settings(cfg, env={"PREGBRIDGE_HL7_HOST": "0.0.0.0"})
    assert (s.hl7.host, s.hl7.port, s.hl7.reuse_port, s.hl7.peer_match) == ("0.0.0.0", 2600, True, "sender")
    assert dict(s.hl7.peers) == {"MIRTH^AHUS": "mirth"}
    assert (s.upstream.base_url, s.upstream.parallelism) == ("http://127.0.0.1:1", 2)
    assert (s.filematch.max_field, s.preg.max_body, s.access.audit_mode) == (2048, 100, "sync")


@pytest.mark.parametrize(("text", "message"), [
    ("[http]\nport = true\n", "http.port = true: expected an integer from 0 to 65535"),
    ("[http]\nworkers = 2.9\n", "http.workers = 2.9: expected an integer of at least 1"),
    ("[store]\ndata_dir = 5\n", "store.data_dir = 5: expected a path"),
    ('[http]\nport = "8080"\n', 'http.port = "8080": expected an integer'),
    ("[http]\nport = 70000\n", "http.port = 70000: expected an integer from 0 to 65535"),
    ("[http]\nworkers = 0\n", "http.workers = 0: expected an integer of at least 1"),
    ("[http]\ntimeout = 2.5\n", "http.timeout = 2.5: expected an integer"),
    ("[http]\nheader_timeout = 0\n", "http.header_timeout = 0: expected a number greater than 0"),
    ("[http]\nheader_timeout = 1979-05-27\n", "http.header_timeout = .*: expected a number"),
    ("[access]\ntrusted_proxies = \"10.0.0.1\"\n", "access.trusted_proxies = \"10.0.0.1\": expected a list of strings"),
    ("[access]\naudit_mode = \"later\"\n", 'access.audit_mode = "later": expected one of "batched", "sync"'),
    ("[access]\nknown_address_days = 0\n", "access.known_address_days = 0: expected an integer of at least 1"),
    ("[hl7]\npeers = 1\n", "hl7.peers = 1: expected a table of strings"),
    ("[hl7]\nreuse_port = \"yes\"\n", 'hl7.reuse_port = "yes": expected true or false'),
    ("[filematch]\nmax_field = 70000\n", "filematch.max_field = 70000: expected an integer from 1 to 65536"),
    ("[log]\nformat = \"xml\"\n", 'log.format = "xml": expected one of "text", "json"'),
    ("[log]\nlevel = \"INFO\"\n", 'log.level = "INFO": expected one of "debug", "info", "warning", "error"'),
    ("[http]\nprot = 1\n", r"unknown key http.prot \(did you mean http.port\?\)"),
    ('[stor]\nurl = "x"\n', r"unknown section \[stor\] \(did you mean \[store\]\?\)"),
    ("port = 1\n", r"unknown top-level key port: every key belongs in a section"),
    ("http = 1\n", r"http = 1: expected a section \(\[http\]\)"),
    ("[http\n", "not valid TOML"),
    ('[hl7]\ntls_cert = "/c.pem"\n', "hl7.tls_cert and hl7.tls_key go together"),
    ('[hl7]\ndefault_charset = "KLINGON"\n', "hl7.default_charset: 'KLINGON' is no character set"),
    ('[access]\nproxy_header = "X-Real-IP"\n', "X-Real-IP"),
])
def test_bad_files_name_the_key_the_file_and_what_is_expected(tmp_path: Path, text: str, message: str) -> None:
    cfg = _file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(cfg, env={})
    assert str(raised.value).startswith(f"{cfg}: ")
    assert "Settings" not in str(raised.value)  # never a Python class (HttpSettings.prot)


@pytest.mark.parametrize(("env", "message"), [
    ({"PREGBRIDGE_HTTP_PORT": "abc"}, 'environment variable PREGBRIDGE_HTTP_PORT="abc" \\(http.port\\): expected an '
                                      "integer from 0 to 65535"),
    ({"PREGBRIDGE_HTTP_WORKERS": "0"}, "PREGBRIDGE_HTTP_WORKERS=\"0\" \\(http.workers\\): expected an integer of at "
                                       "least 1"),
    ({"PREGBRIDGE_AUDIT_MODE": "later"}, "PREGBRIDGE_AUDIT_MODE"),
    ({"PREGBRIDGE_TRUSTED_PROXIES": "10.0.0.300"}, "access.trusted_proxies: '10.0.0.300'"),
    ({"PREGBRIDGE_CONFIG": "/nonexistent/pregbridge.toml"}, "/nonexistent/pregbridge.toml: the configuration file "
                                                            "cannot be read"),
])
def test_bad_environment_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_a_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--port 70000 \(http.port\): expected an integer from 0 to 65535"):
        load_settings(env={}, overrides={"http.port": ("--port", 70000)})


@pytest.mark.parametrize("text", ["[http]\nport = true\n", "[http]\nprot = 1\n", "[store]\ndata_dir = 5\n"])
def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path, text: str) -> None:
    cfg = _file(tmp_path, text)
    done = subprocess.run([sys.executable, "-m", "server", "--config", str(cfg), "init"], capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.startswith(f"error: {cfg}: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "var").exists()  # nothing was built


def test_serve_flags_and_listen_hl7_flags_reach_their_own_sections(tmp_path: Path) -> None:
    from server.cli import _parser, _settings

    args = _parser().parse_args(["--data-dir", str(tmp_path), "listen-hl7", "--port", "2999", "--reuse-port"])
    s = _settings(args)
    assert (s.hl7.port, s.hl7.reuse_port, s.http.port, s.store.data_dir) == (2999, True, DEFAULT_HTTP_PORT, tmp_path)
    s = _settings(_parser().parse_args(["serve", "--port", "8181", "--workers", "3"]))
    assert (s.http.port, s.http.workers, s.hl7.port) == (8181, 3, 2575)


def test_gunicorn_gets_the_http_timeouts_and_worker_recycling(tmp_path: Path) -> None:
    from server.runner import _Application

    cfg = _file(tmp_path, "[http]\ntimeout = 300\ngraceful_timeout = 5\nmax_requests = 1000\n"
                          "max_requests_jitter = 50\nworkers = 3\n")
    app = _Application(load_settings(cfg, env={}))
    assert (app.cfg.timeout, app.cfg.graceful_timeout, app.cfg.max_requests, app.cfg.max_requests_jitter) \
        == (300, 5, 1000, 50)
    assert app.cfg.workers == 3 and app.cfg.worker_class_str == "server.front.worker.FrontWorker"
