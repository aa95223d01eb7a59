#!/usr/bin/env bash
# The local Kafka-protocol broker for tests and the embedded default: the
# noida-db binary from its PyPI wheel (pinned, sha256-verified), run directly
# (not through its Python wrapper) with only the kafka service, on loopback.
#
#   bash scripts/broker.sh install   download + verify the wheel, extract the binary
#   bash scripts/broker.sh start     install if needed, start in the background, wait for the port
#   bash scripts/broker.sh stop      SIGTERM, wait, SIGKILL after a timeout
#   bash scripts/broker.sh status    exit 0 if running, 3 if not
#   bash scripts/broker.sh restart   stop + start (data kept)
#   bash scripts/broker.sh wipe      stop + delete the data dir
#
# Every subcommand is idempotent. Environment:
#   EARSHOT_KAFKA_PORT   port to listen on (default 9092). A port other than
#                        9092 gets its own data dir, pid file and log, so a
#                        second broker can run beside the default one.
#   EARSHOT_BROKER_STOP_TIMEOUT  seconds to wait after SIGTERM (default 20)
#   EARSHOT_BROKER_START_TIMEOUT seconds to wait for the port (default 30)
# State lives under $EARSHOT_CACHE/broker: bin/noida-db, data/, broker.pid,
# broker.log (the binary prints a harmless GLIBC version warning on Debian 12).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

NOIDA_PKG="noida-db==0.2.3"
NOIDA_WHEEL="noida_db-0.2.3-py3-none-manylinux_2_17_x86_64.whl"
NOIDA_WHEEL_SHA256="40a2fb15567e3d344e7483df62bb439e7d64ac6fb232f4f223554aed58204f82"
NOIDA_MEMBER="noida_db/noida-db"
NOIDA_BIN_SHA256="d723e9d728b1d2005f0ee74f0c3696ba11aa021c280f869b6d095e6a87e357b7"

HOST=127.0.0.1
PORT="${EARSHOT_KAFKA_PORT:-9092}"
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "EARSHOT_KAFKA_PORT=$PORT is not a port number"
STOP_TIMEOUT="${EARSHOT_BROKER_STOP_TIMEOUT:-20}"
START_TIMEOUT="${EARSHOT_BROKER_START_TIMEOUT:-30}"

PIPDIR="$EARSHOT_CACHE/pip"
BROKER_DIR="$EARSHOT_CACHE/broker"
BIN="$BROKER_DIR/bin/noida-db"
if [ "$PORT" = 9092 ]; then suffix=""; else suffix="-$PORT"; fi
DATA_DIR="$BROKER_DIR/data$suffix"
PID_FILE="$BROKER_DIR/broker$suffix.pid"
LOG_FILE="$BROKER_DIR/broker$suffix.log"
LOCK_FILE="$BROKER_DIR/broker$suffix.lock"

# Serialize start/stop/wipe of one broker (e.g. two test scripts at once).
take_lock() {
  mkdir -p "$BROKER_DIR"
  exec 9>"$LOCK_FILE"
  flock -w 120 9 || die "another scripts/broker.sh holds $LOCK_FILE for more than 120 s"
}

install() {
  if [ -x "$BIN" ] && [ "$(sha "$BIN")" = "$NOIDA_BIN_SHA256" ]; then
    log "broker binary ok: $BIN ($NOIDA_PKG, sha256 verified)"
    return 0
  fi
  mkdir -p "$PIPDIR" "$(dirname "$BIN")"
  local whl="$PIPDIR/$NOIDA_WHEEL"
  if [ -f "$whl" ] && [ "$(sha "$whl")" != "$NOIDA_WHEEL_SHA256" ]; then
    log "cached $whl has the wrong checksum; downloading again"
    rm -f "$whl"
  fi
  if [ ! -f "$whl" ]; then
    log "downloading $NOIDA_PKG from PyPI"
    # Plain download: `--platform manylinux2014_x86_64` does not find this wheel.
    python3 -m pip download --quiet --no-deps "$NOIDA_PKG" -d "$PIPDIR" >&2 \
      || die "pip could not download $NOIDA_PKG; check access to PyPI (pip config, proxy)"
    [ -f "$whl" ] || die "pip downloaded $NOIDA_PKG but $whl is not there (other platform's wheel?)"
  fi
  local got
  got=$(sha "$whl")
  [ "$got" = "$NOIDA_WHEEL_SHA256" ] || die "checksum mismatch for $whl: got $got, expected $NOIDA_WHEEL_SHA256"
  extract_verified "$whl" "$NOIDA_MEMBER" "$BIN" "$NOIDA_BIN_SHA256"
  chmod +x "$BIN"
  log "installed $BIN from $NOIDA_PKG (wheel and binary sha256 verified)"
}

# True when $1 is a live process running our binary with our data dir
# (guards against a stale pid file whose pid was reused).
is_ours() {
  local pid="$1" cmd
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *noida-db* && "$cmd" == *"--data-dir $DATA_DIR "* ]]
}

# Prints the pid of the running broker, or nothing. Adopts a broker that runs
# on our data dir without a pid file (its control file names the pid).
running_pid() {
  local pid=""
  [ -f "$PID_FILE" ] && pid=$(cat "$PID_FILE" 2>/dev/null || true)
  if is_ours "$pid"; then echo "$pid"; return 0; fi
  if [ -f "$DATA_DIR/noida.control.json" ]; then
    pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid",""))' \
      "$DATA_DIR/noida.control.json" 2>/dev/null || true)
    if is_ours "$pid"; then echo "$pid" >"$PID_FILE"; echo "$pid"; return 0; fi
  fi
  rm -f "$PID_FILE"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

log_tail() { [ -f "$LOG_FILE" ] && tail -n 20 "$LOG_FILE" | sed 's/^/    /' >&2 || true; }

start() {
  install
  take_lock
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then
    log "broker already running (pid $pid) on $HOST:$PORT, data $DATA_DIR"
    return 0
  fi
  port_open && die "$HOST:$PORT is already in use by another process (not this broker); stop it or set EARSHOT_KAFKA_PORT"
  mkdir -p "$DATA_DIR"
  [ -f "$LOG_FILE" ] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  log "starting broker on $HOST:$PORT (data $DATA_DIR, log $LOG_FILE)"
  # setsid: own session, so Ctrl-C in the calling terminal does not reach it.
  setsid nohup "$BIN" start --only kafka --host "$HOST" --kafka-port "$PORT" --data-dir "$DATA_DIR" \
    >"$LOG_FILE" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      log "broker log ($LOG_FILE), last lines:"; log_tail
      die "broker exited during start-up"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "broker log ($LOG_FILE), last lines:"; log_tail
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      die "broker did not accept connections on $HOST:$PORT within ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
  log "broker ready on $HOST:$PORT (pid $pid)"
}

stop() {
  take_lock
  local pid
  pid=$(running_pid)
  if [ -z "$pid" ]; then
    log "broker not running ($HOST:$PORT)"
    rm -f "$PID_FILE"
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "broker still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PID_FILE"
  log "broker stopped"
}

status() {
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then
    local up="no"; port_open && up="yes"
    log "broker running: pid $pid, $HOST:$PORT (accepting connections: $up), data $DATA_DIR ($(du -sh "$DATA_DIR" 2>/dev/null | cut -f1)), log $LOG_FILE"
    return 0
  fi
  log "broker not running ($HOST:$PORT, data $DATA_DIR)"
  return 3
}

wipe() {
  stop
  if [ -d "$DATA_DIR" ]; then
    rm -rf "$DATA_DIR"
    log "deleted $DATA_DIR"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; exec 9>&-; start ;;
  wipe) wipe ;;
  *) echo "usage: bash scripts/broker.sh install|start|stop|status|restart|wipe  (EARSHOT_KAFKA_PORT=${PORT})" >&2; exit 2 ;;
esac
