#!/usr/bin/env bash
# CI: replay the shipped corpus (docs/replay-corpus) against a freshly built demo store (docs/replay.md, "CI").
# Builds the store with the corpus' seed (300 persons, seed 11, no change feed), adds the `epj` account, starts
# `pregbridge serve` and `pregbridge listen-hl7` on free loopback ports, replays, stops the servers, and exits
# non-zero when any case differs or errors. Reports: $REPLAY_OUT (default var/replay) junit.xml and report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=".venv/bin/python"
OUT="${REPLAY_OUT:-var/replay}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pregbridge-replay.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
export PYTHONWARNINGS=ignore

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
HTTP_PORT="$(free_port)"; HL7_PORT="$(free_port)"
while [ "$HL7_PORT" = "$HTTP_PORT" ]; do HL7_PORT="$(free_port)"; done
USER_NAME="replay-epj"
PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')"
CONFIG="$WORK/pregbridge.toml"
printf '[hl7]\npeer_match = "address"\n[hl7.peers]\n"127.0.0.1" = "%s"\n' "$USER_NAME" > "$CONFIG"
PB=("$PY" -m server --config "$CONFIG" --data-dir "$WORK")

"${PB[@]}" demo-data --persons 300 --seed 11 --out "$WORK/population" >/dev/null
"${PB[@]}" load "$WORK/population" >/dev/null
printf '%s\n' "$PASSWORD" | "${PB[@]}" users add "$USER_NAME" --profile full --password-stdin >/dev/null

setsid "${PB[@]}" serve --host 127.0.0.1 --port "$HTTP_PORT" --workers 1 >"$WORK/serve.log" 2>&1 &
PIDS+=("$!")
setsid "${PB[@]}" listen-hl7 --host 127.0.0.1 --port "$HL7_PORT" >"$WORK/listen-hl7.log" 2>&1 &
PIDS+=("$!")

"$PY" - "$HTTP_PORT" "$HL7_PORT" <<'PYEOF'
import socket, sys, time, urllib.request
http_port, hl7_port = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 60
for check in (lambda: urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2).close(),
              lambda: socket.create_connection(("127.0.0.1", hl7_port), timeout=2).close()):
    while True:
        try:
            check()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("replay: pregbridge did not start within 60 s")
            time.sleep(0.2)
PYEOF

# `pregbridge replay` once server/cli.py registers it; the harness' own entry point until then.
if "${PB[@]}" replay --help >/dev/null 2>&1; then REPLAY=("${PB[@]}" replay); else REPLAY=("$PY" -m server.replay.cli replay); fi
mkdir -p "$OUT"
status=0
PREGBRIDGE_REPLAY_ACCOUNT_EPJ_USERNAME="$USER_NAME" PREGBRIDGE_REPLAY_ACCOUNT_EPJ_PASSWORD="$PASSWORD" \
  "${REPLAY[@]}" docs/replay-corpus --target "http://127.0.0.1:$HTTP_PORT" --hl7-target "127.0.0.1:$HL7_PORT" \
  --junit "$OUT/junit.xml" --html "$OUT/report.html" || status=$?
if [ "$status" -ne 0 ]; then
  echo "replay: some cases do not answer as recorded (exit $status); see $OUT/report.html" >&2
fi
exit "$status"
