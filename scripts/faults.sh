#!/usr/bin/env bash
# Fault harness (manual, not run in CI): runs earshot (random encoder) on a
# real Kafka-protocol broker with a real webhook receiver, injects one fault
# at a time and checks, with confluent-kafka (a client we did not write),
# that nothing was lost:
#
#   kill     SIGKILL the engine FAULTS_KILLS times at random points while it
#            consumes FAULTS_EVENTS pre-produced events (restarted each time),
#            then one `--until-idle` run finishes the topic
#   broker   the broker stopped FAULTS_BROKER_DOWN_S and restarted while a
#            producer writes ~FAULTS_BROKER_RATE events/s (event time = now)
#            and the engine consumes
#   second   a second earshot instance joins the consumer group and leaves
#            (SIGTERM) while events arrive at FAULTS_SECOND_RATE/s
#   webhook  the webhook receiver down FAULTS_WEBHOOK_DOWN_S while alerts
#            fire (engine restarted once mid-outage), then back: every alert
#            must arrive from the durable outbox
#   load     the engine's capacity measured on a backlog first, then a
#            producer at FAULTS_LOAD_FACTOR x that rate for FAULTS_LOAD_S; the
#            engine must stay in the group with bounded RSS, then drain
#
#   bash scripts/faults.sh [kill broker second webhook load]   # default: all
#
# Short smoke run (about 12 minutes on 2 cores):
#   FAULTS_EVENTS=20000 FAULTS_KILLS=3 FAULTS_BROKER_PRE_S=15 FAULTS_BROKER_DOWN_S=20 \
#   FAULTS_BROKER_POST_S=20 FAULTS_SECOND_PHASE_S=10 FAULTS_WEBHOOK_DOWN_S=60 FAULTS_LOAD_S=15 \
#   FAULTS_STALL_S=60 bash scripts/faults.sh
#
# The report (markdown table per fault, then details) is printed at the end
# and written to $EARSHOT_CACHE/faults/report-<broker>-<timestamp>.md; every
# log, sample and count stays in $EARSHOT_CACHE/faults/run-<broker>-<timestamp>/.
# Exit status: 0 when every selected fault ran and lost nothing (neither the
# broker nor earshot) and every alert reached the receiver, 1 otherwise.
#
# Environment (defaults in brackets):
#   EARSHOT_BIN            earshot binary [$CARGO_TARGET_DIR/release/earshot]; this
#                          script never builds (cargo build --release first)
#   FAULTS_BROKER          noida | tansu [noida]
#   FAULTS_PORT            broker port [19700] (not 9092: the test broker stays untouched)
#   FAULTS_KEEP_BROKER     1: leave the broker running at the end [0]
#   FAULTS_STREAM          JSONL events [$EARSHOT_CACHE/bench-replay/stream-1000000.jsonl,
#                          generated with the generator of scripts/bench-replay.sh if missing;
#                          its first 200,000 lines are the s200k stream]
#   FAULTS_EVENTS          events for `kill` [200000]
#   FAULTS_KILLS           SIGKILLs for `kill` [20]
#   FAULTS_SESSION_TIMEOUT_MS  consumer session.timeout.ms given to the engine [10000]:
#                          a killed member holds its partitions until then
#   FAULTS_BROKER_DOWN_S / _RATE / _PRE_S / _POST_S   `broker` [60 / 40 / 30 / 60]
#   FAULTS_SECOND_RATE / FAULTS_SECOND_PHASE_S  `second`: events/s, and seconds
#                          alone / with the second instance / alone again [1000 / 60]
#   FAULTS_WEBHOOK_DOWN_S  `webhook` outage [600]; FAULTS_WEBHOOK_EVENTS [30000]
#   FAULTS_WEBHOOK_RESTART 1: SIGTERM + restart the engine in the middle of the outage [1]
#   FAULTS_SINK_MAX_ATTEMPTS  the sink's max_attempts [earshot's default, 10000; retries are
#                          bounded by max_retry_minutes, default 1440]
#   FAULTS_LOAD_S          `load` duration [600]; FAULTS_LOAD_FACTOR [10];
#                          FAULTS_CAPACITY_EVENTS backlog for the capacity measurement [50000]
#   FAULTS_DRAIN_TIMEOUT_S longest wait for a topic to be drained [1800; load: computed]
#   FAULTS_STALL_S         give up draining when the group lag has not moved this long [180]
#   FAULTS_TANSU_STORAGE   tansu storage URL [sqlite://tansu.db, in $EARSHOT_CACHE/faults/tansu-<port>];
#                          needs a tansu built with `--features libsql` (memory:// needs `dynostore`
#                          and loses every message when the broker stops)
#   FAULTS_KILL_STATIC     kill fault with static group membership (group.instance.id): auto = only
#                          when the broker does not evict a SIGKILLed member (checked first) [auto]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
HERE="$EARSHOT_ROOT/scripts/faults"

EARSHOT_BIN="${EARSHOT_BIN:-$CARGO_TARGET_DIR/release/earshot}"
FAULTS_BROKER="${FAULTS_BROKER:-noida}"
FAULTS_PORT="${FAULTS_PORT:-19700}"
BROKERS="127.0.0.1:$FAULTS_PORT"
FAULTS_EVENTS="${FAULTS_EVENTS:-200000}"
FAULTS_KILLS="${FAULTS_KILLS:-20}"
FAULTS_SESSION_TIMEOUT_MS="${FAULTS_SESSION_TIMEOUT_MS:-10000}"
FAULTS_BROKER_DOWN_S="${FAULTS_BROKER_DOWN_S:-60}"
FAULTS_BROKER_RATE="${FAULTS_BROKER_RATE:-40}"
FAULTS_BROKER_PRE_S="${FAULTS_BROKER_PRE_S:-30}"
FAULTS_BROKER_POST_S="${FAULTS_BROKER_POST_S:-60}"
FAULTS_SECOND_RATE="${FAULTS_SECOND_RATE:-1000}"
FAULTS_SECOND_PHASE_S="${FAULTS_SECOND_PHASE_S:-60}"
FAULTS_WEBHOOK_DOWN_S="${FAULTS_WEBHOOK_DOWN_S:-600}"
FAULTS_WEBHOOK_EVENTS="${FAULTS_WEBHOOK_EVENTS:-30000}"
FAULTS_WEBHOOK_RESTART="${FAULTS_WEBHOOK_RESTART:-1}"
FAULTS_SINK_MAX_ATTEMPTS="${FAULTS_SINK_MAX_ATTEMPTS:-}"
FAULTS_LOAD_S="${FAULTS_LOAD_S:-600}"
FAULTS_LOAD_FACTOR="${FAULTS_LOAD_FACTOR:-10}"
FAULTS_CAPACITY_EVENTS="${FAULTS_CAPACITY_EVENTS:-50000}"
FAULTS_DRAIN_TIMEOUT_S="${FAULTS_DRAIN_TIMEOUT_S:-1800}"
FAULTS_KEEP_BROKER="${FAULTS_KEEP_BROKER:-0}"
FAULTS_KILL_STATIC="${FAULTS_KILL_STATIC:-auto}"
FAULTS_STALL_S="${FAULTS_STALL_S:-180}"
HOOK_PORT="${FAULTS_HOOK_PORT:-19801}"
PARTITIONS=6
DRAIN_TIMEOUT_MS=30000   # pipeline.drain_timeout_ms (earshot's default)

ALL_FAULTS=(kill broker second webhook load)
FAULTS=("$@")
[ ${#FAULTS[@]} -gt 0 ] || FAULTS=("${ALL_FAULTS[@]}")
for f in "${FAULTS[@]}"; do
  [[ " ${ALL_FAULTS[*]} " == *" $f "* ]] || die "unknown fault '$f' (choose from: ${ALL_FAULTS[*]})"
done
[ -x "$EARSHOT_BIN" ] || die "no earshot binary at $EARSHOT_BIN (set EARSHOT_BIN, or cargo build --release)"

TS="$(date -u +%Y%m%dT%H%M%SZ)"
FAULTS_HOME="$EARSHOT_CACHE/faults"
RUN_DIR="$FAULTS_HOME/run-$FAULTS_BROKER-$TS"
REPORT="$FAULTS_HOME/report-$FAULTS_BROKER-$TS.md"
VENV="$FAULTS_HOME/venv"
PY="$VENV/bin/python"
mkdir -p "$RUN_DIR"

# ------------------------------------------------------------------ helpers

stamp() { date +%s.%3N; }
FDIR=""                                   # the current fault's directory
mark() { echo "$(stamp) $*" >>"$FDIR/events.txt"; log "[$(basename "$FDIR")] $*"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$FDIR/meta.tsv"; }
rand() { python3 -c "import random,sys; print(random.randint(int(sys.argv[1]), int(sys.argv[2])))" "$1" "$2"; }
randf() { python3 -c "import random,sys; print(round(random.uniform(float(sys.argv[1]), float(sys.argv[2])), 2))" "$1" "$2"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every second; 1 on timeout.
wait_for() {
  local t=$1 what=$2; shift 2
  local deadline=$((SECONDS + t))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then log "timed out after ${t}s waiting for $what"; return 1; fi
    sleep 1
  done
}

# Every background process this script starts (pid and a name), for cleanup.
CHILDREN="$RUN_DIR/children"
: >"$CHILDREN"
track() { echo "$1 $2" >>"$CHILDREN"; }

# kill_children: stops every engine and helper this script started (the
# broker is not one of them).
kill_children() {
  local pid name f any
  # supervisors first (so they do not restart), then engines, then the rest
  for f in "$RUN_DIR"/*/*.stopme; do [ -e "$f" ] && touch "${f%.stopme}.stop"; done
  for f in "$RUN_DIR"/*/engine-*.pid; do
    [ -e "$f" ] && pid=$(cat "$f") && alive "$pid" && kill -TERM "$pid"
  done
  while read -r pid name; do alive "$pid" && kill -TERM "$pid"; done <"$CHILDREN"
  for _ in $(seq 1 80); do
    any=0
    while read -r pid name; do alive "$pid" && any=1; done <"$CHILDREN"
    for f in "$RUN_DIR"/*/engine-*.pid; do [ -e "$f" ] && alive "$(cat "$f")" && any=1; done
    [ $any = 0 ] && break
    sleep 0.5
  done
  while read -r pid name; do alive "$pid" && kill -KILL "$pid"; done <"$CHILDREN"
  for f in "$RUN_DIR"/*/engine-*.pid; do [ -e "$f" ] && pid=$(cat "$f") && alive "$pid" && kill -KILL "$pid"; done
  return 0
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  kill_children
  [ "$FAULTS_KEEP_BROKER" = 1 ] || broker_stop >/dev/null 2>&1
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ python venv (confluent-kafka)

setup_venv() {
  if [ -x "$PY" ] && "$PY" -c 'import confluent_kafka' 2>/dev/null; then return 0; fi
  log "installing confluent-kafka into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet confluent-kafka || die "pip install confluent-kafka failed (is PyPI reachable?)"
}

# ------------------------------------------------------------------ broker (pluggable)

TANSU_BIN="$EARSHOT_CACHE/tansu/bin/tansu"
TANSU_DIR="$EARSHOT_CACHE/faults/tansu-$FAULTS_PORT"
# libsql resolves sqlite://NAME relative to the working directory (tansu is
# started in TANSU_DIR); memory:// loses everything when the broker stops.
TANSU_STORAGE="${FAULTS_TANSU_STORAGE:-sqlite://tansu.db}"

broker_start() {
  case "$FAULTS_BROKER" in
    noida) EARSHOT_KAFKA_PORT=$FAULTS_PORT bash "$EARSHOT_ROOT/scripts/broker.sh" start ;;
    tansu)
      [ -x "$TANSU_BIN" ] || die "no tansu at $TANSU_BIN (cargo install tansu --version 0.6.0 --root $EARSHOT_CACHE/tansu)"
      if [ -f "$TANSU_DIR/tansu.pid" ] && alive "$(cat "$TANSU_DIR/tansu.pid")"; then return 0; fi
      port_open "$FAULTS_PORT" && die "127.0.0.1:$FAULTS_PORT is in use by something else"
      mkdir -p "$TANSU_DIR"
      # shellcheck disable=SC2086
      (cd "$TANSU_DIR" && exec setsid "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$FAULTS_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$FAULTS_PORT" \
        --storage-engine "$TANSU_STORAGE" ${FAULTS_TANSU_ARGS:-} \
        >>"$TANSU_DIR/tansu.log" 2>&1 </dev/null) &
      echo $! >"$TANSU_DIR/tansu.pid"
      tansu_up() {
        port_open "$FAULTS_PORT" && return 0
        alive "$(cat "$TANSU_DIR/tansu.pid")" && return 1
        tail -5 "$TANSU_DIR/tansu.log" >&2
        grep -q FeatureNotEnabled "$TANSU_DIR/tansu.log" \
          && die "this tansu was built without the storage engine of $TANSU_STORAGE: reinstall with cargo install tansu --version 0.6.0 --locked --features libsql,dynostore --root $EARSHOT_CACHE/tansu"
        die "tansu exited during start-up"
      }
      wait_for 30 "tansu on port $FAULTS_PORT" tansu_up \
        || { tail -20 "$TANSU_DIR/tansu.log" >&2; die "tansu did not start"; }
      log "tansu ready on $BROKERS (pid $(cat "$TANSU_DIR/tansu.pid"), storage $TANSU_STORAGE)"
      ;;
    *) die "FAULTS_BROKER must be noida or tansu" ;;
  esac
}

broker_stop() {
  case "$FAULTS_BROKER" in
    noida) EARSHOT_KAFKA_PORT=$FAULTS_PORT bash "$EARSHOT_ROOT/scripts/broker.sh" stop ;;
    tansu)
      local pid
      pid=$(cat "$TANSU_DIR/tansu.pid" 2>/dev/null || true)
      if alive "$pid"; then
        kill -TERM "$pid"
        for _ in $(seq 1 200); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid"
      fi
      rm -f "$TANSU_DIR/tansu.pid"
      ;;
  esac
}

broker_wipe() {
  case "$FAULTS_BROKER" in
    noida) EARSHOT_KAFKA_PORT=$FAULTS_PORT bash "$EARSHOT_ROOT/scripts/broker.sh" wipe ;;
    tansu) broker_stop; rm -rf "$TANSU_DIR" ;;
  esac
}

# ------------------------------------------------------------------ per-fault setup

# broker_ensure: a broker that died or stopped answering during an earlier
# fault (its own failure, reported there) is restarted, so the next fault
# starts on a working broker.
broker_ensure() {
  "$PY" "$HERE/kafka_tool.py" ping --brokers "$BROKERS" 2>/dev/null && return 0
  log "the broker does not answer; restarting it before fault $FAULT"
  meta "broker" "did not answer at the start of this fault (broken by an earlier one): restarted"
  broker_stop || true
  broker_start
}

# fault_begin NAME: directory, topics, group and config of one fault.
fault_begin() {
  FAULT=$1
  FDIR="$RUN_DIR/$FAULT"
  mkdir -p "$FDIR"
  : >"$FDIR/events.txt"; : >"$FDIR/meta.tsv"
  broker_ensure
  T_IN="f$TS-$FAULT.in"; T_SCORED="f$TS-$FAULT.scored"
  T_DEAD="f$TS-$FAULT.dead"; T_ALERTS="f$TS-$FAULT.alerts"
  GROUP="faults-$TS-$FAULT"
  CONFIRMED="$FDIR/confirmed.ids"
  : >"$CONFIRMED"
  printf 'faults-harness-secret-%s' "$TS" >"$FDIR/webhook.secret"
  write_config engine-a 19811
  write_config engine-b 19812
  echo "$FAULT" >>"$RUN_DIR/faults.txt"
  # the group's lag on the input topic, every second, for the whole fault
  "$PY" "$HERE/kafka_tool.py" lagmon --brokers "$BROKERS" --group "$GROUP" --topic "$T_IN" \
    --out "$FDIR/grouplag.csv" 2>/dev/null &
  echo $! >"$FDIR/lagmon.pid"
  track $! lagmon
  meta topics "$T_IN → $T_SCORED, $T_DEAD, $T_ALERTS (group $GROUP)"
  mark fault_begin
}

# write_config TAG HTTP_PORT [EXTRA]: one engine's config (each has its own
# outbox); EXTRA: more [kafka.properties] lines.
write_config() {
  local tag=$1 port=$2 extra=${3:-}
  echo "$port" >"$FDIR/$tag.port"
  cat >"$FDIR/$tag.toml" <<TOML
# written by scripts/faults.sh
[model]
encoder = "random"
dir = "$EARSHOT_ROOT/models"

[kafka]
brokers = "$BROKERS"
group_id = "$GROUP"
topics = ["$T_IN"]
[kafka.properties]
"session.timeout.ms" = "$FAULTS_SESSION_TIMEOUT_MS"
$extra
[output]
scored_topic = "$T_SCORED"
alerts_topic = "$T_ALERTS"
dead_letter_topic = "$T_DEAD"
topic_partitions = $PARTITIONS

[pipeline]
drain_timeout_ms = $DRAIN_TIMEOUT_MS

[alert]
outbox_path = "$FDIR/$tag.outbox.redb"

[[alert.sinks]]
name = "receiver"
kind = "generic"
url = "http://127.0.0.1:$HOOK_PORT/hook"
secret_file = "$FDIR/webhook.secret"
${FAULTS_SINK_MAX_ATTEMPTS:+max_attempts = $FAULTS_SINK_MAX_ATTEMPTS}
TOML
}

# ------------------------------------------------------------------ engine control

# engine_once TAG [run args...]: runs one earshot process (in the caller's
# subshell), publishing its pid in TAG.pid and its start and exit code in
# events.txt ("start TAG PID", "exit TAG RC"); sets rc.
engine_once() {
  local tag=$1; shift
  local port; port=$(cat "$FDIR/$tag.port")
  "$EARSHOT_BIN" run --config "$FDIR/$tag.toml" --http-addr "127.0.0.1:$port" "$@" >>"$FDIR/$tag.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$FDIR/$tag.pid.tmp"; mv "$FDIR/$tag.pid.tmp" "$FDIR/$tag.pid"
  echo "$(stamp) start $tag $pid" >>"$FDIR/events.txt"
  wait "$pid"; rc=$?
  echo "$(stamp) exit $tag $rc" >>"$FDIR/events.txt"
}

# engine_start TAG [run args...]: one earshot process in the background.
engine_start() {
  local tag=$1
  rm -f "$FDIR/$tag.pid"
  ( set +e; engine_once "$@" ) 2>>"$FDIR/$tag.log" &
  track $! "engine-subshell-$tag"
  while [ ! -s "$FDIR/$tag.pid" ]; do sleep 0.05; done
}

# engine_supervise TAG [run args...]: like engine_start, but restarts the
# engine (after 2 s) whenever it exits, until engine_stop TAG.
engine_supervise() {
  local tag=$1
  rm -f "$FDIR/$tag.pid" "$FDIR/$tag.stop"
  touch "$FDIR/$tag.stopme"
  (
    set +e
    while :; do
      engine_once "$@"
      [ -e "$FDIR/$tag.stop" ] && break
      echo "$(stamp) restart $tag after exit $rc" >>"$FDIR/events.txt"
      sleep 2
    done
  ) 2>>"$FDIR/$tag.log" &
  echo $! >"$FDIR/$tag.supervisor"
  track $! "supervisor-$tag"
  while [ ! -s "$FDIR/$tag.pid" ]; do sleep 0.05; done
}

engine_pid() { cat "$FDIR/$1.pid" 2>/dev/null || true; }

# engine_wait TAG SECONDS: waits for the engine process to exit.
engine_wait() {
  local pid; pid=$(engine_pid "$1")
  local deadline=$((SECONDS + $2))
  while alive "$pid"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
  # let the subshell write the exit line
  sleep 0.3
}

# engine_stop TAG: SIGTERM (and the supervisor, if any, stops restarting);
# SIGKILL if it is still there drain_timeout + 15 s later.
engine_stop() {
  local tag=$1 pid
  touch "$FDIR/$tag.stop"
  pid=$(engine_pid "$tag")
  if alive "$pid"; then
    mark sigterm "$tag" "$pid"
    kill -TERM "$pid"
    if ! engine_wait "$tag" $((DRAIN_TIMEOUT_MS / 1000 + 15)); then
      mark "sigkill_after_sigterm_timeout $tag $pid"
      kill -KILL "$pid"
      engine_wait "$tag" 10 || true
    fi
  fi
  if [ -f "$FDIR/$tag.supervisor" ]; then
    local sp; sp=$(cat "$FDIR/$tag.supervisor")
    while alive "$sp"; do sleep 0.2; done
  fi
}

# engine_kill TAG: SIGKILL, waits for the process to go.
engine_kill() {
  local tag=$1 pid
  pid=$(engine_pid "$tag")
  alive "$pid" || return 0
  mark kill "$tag" "$pid" "acked=$(metric "$tag" earshot_events_acked_total)"
  kill -KILL "$pid"
  engine_wait "$tag" 10 || true
}

# metric TAG NAME: the sum of a metric over its label sets ("" when down).
metric() {
  local port; port=$(cat "$FDIR/$1.port")
  curl -s -m 1 "http://127.0.0.1:$port/metrics" 2>/dev/null \
    | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF; f = 1 } END { if (f) printf "%d\n", s }'
}

monitor_start() {
  local tag=$1
  python3 "$HERE/monitor.py" --pidfile "$FDIR/$tag.pid" --http "127.0.0.1:$(cat "$FDIR/$tag.port")" \
    --out "$FDIR/$tag.samples.csv" &
  echo $! >"$FDIR/$tag.monitor"
  track $! "monitor-$tag"
}

monitor_stop() {
  local pid; pid=$(cat "$FDIR/$1.monitor" 2>/dev/null || true)
  alive "$pid" && kill -TERM "$pid" && wait "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------------ receiver, producer, checks

receiver_start() {
  python3 "$HERE/receiver.py" --port "$HOOK_PORT" --out "$FDIR/receiver.jsonl" \
    --secret-file "$FDIR/webhook.secret" 2>>"$FDIR/receiver.log" &
  echo $! >"$FDIR/receiver.pid"
  track $! receiver
  wait_for 10 "the receiver's port" port_open "$HOOK_PORT" || die "webhook receiver did not start"
  mark receiver_up
}

# receiver_down: SIGKILL (a crash: the port is closed, nothing answers).
receiver_down() {
  local pid; pid=$(cat "$FDIR/receiver.pid" 2>/dev/null || true)
  alive "$pid" && kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  while port_open "$HOOK_PORT"; do sleep 0.1; done
  mark receiver_down
}

receiver_posts() { [ -f "$FDIR/receiver.jsonl" ] && wc -l <"$FDIR/receiver.jsonl" || echo 0; }

# produce NAME [kafka_tool produce args...]: foreground producer into T_IN;
# confirmed ids appended to confirmed.ids, summary in NAME.stats.json.
produce() {
  local name=$1; shift
  "$PY" "$HERE/kafka_tool.py" produce --brokers "$BROKERS" --topic "$T_IN" --partitions $PARTITIONS \
    --confirmed "$CONFIRMED" --stats "$FDIR/$name.stats.json" "$@" 2>>"$FDIR/producer.log" \
    || mark producer_failed "$name" "rc=$?"
}

# produce_bg NAME ...: the same in the background (pid in $FDIR/NAME.producer).
produce_bg() {
  local name=$1; shift
  ( exec "$PY" "$HERE/kafka_tool.py" produce --brokers "$BROKERS" --topic "$T_IN" --partitions $PARTITIONS \
      --confirmed "$CONFIRMED" --stats "$FDIR/$name.stats.json" "$@" 2>>"$FDIR/producer.log" ) &
  echo $! >"$FDIR/$name.producer"
  track $! "producer-$name"
}

producer_wait() { local pid; pid=$(cat "$FDIR/$1.producer"); wait "$pid" || mark producer_failed "$1" "rc=$?"; }

group_lag() { "$PY" "$HERE/kafka_tool.py" grouplag --brokers "$BROKERS" --group "$GROUP" --topic "$T_IN" 2>/dev/null || echo -1; }
drained() { [ "$(group_lag)" = 0 ]; }

# wait_drained SECONDS: until the group's committed offsets reach the end of
# the input topic; marks "drained". Gives up early when the lag has not moved
# for FAULTS_STALL_S (a stuck engine), marking "not_drained".
wait_drained() {
  local deadline=$((SECONDS + $1)) lag last=-2 since=$SECONDS
  while :; do
    lag=$(group_lag)
    if [ "$lag" = 0 ]; then mark drained; return 0; fi
    [ "$lag" != "$last" ] && { last=$lag; since=$SECONDS; }
    if [ $((SECONDS - since)) -ge "$FAULTS_STALL_S" ]; then
      mark not_drained "lag=$lag stalled: no progress for ${FAULTS_STALL_S}s"; return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then mark not_drained "lag=$lag timeout ${1}s"; return 1; fi
    sleep 2
  done
}

verify() {
  mark verify
  "$PY" "$HERE/kafka_tool.py" verify --brokers "$BROKERS" --input "$T_IN" --scored "$T_SCORED" \
    --dead "$T_DEAD" --alerts "$T_ALERTS" --group "$GROUP" --confirmed "$CONFIRMED" \
    --receiver "$FDIR/receiver.jsonl" --out "$FDIR/verify.json" 2>>"$FDIR/verify.log" \
    || { log "verify failed: $(tail -3 "$FDIR/verify.log")"; return 1; }
}

# a slice of the stream as its own file
stream_slice() { head -n "$1" "$STREAM" >"$2"; }

# ------------------------------------------------------------------ the faults

# kill: FAULTS_KILLS SIGKILLs while consuming FAULTS_EVENTS pre-produced
# events. Each kill waits for a random number of acknowledgements of the new
# process (0 .. 2 x events/(kills+1): spread over the whole consumption,
# including kills during start-up), plus up to 1 s; then a last run with
# --until-idle finishes once the killed members have left the group.
fault_kill() {
  fault_begin kill
  local static=$FAULTS_KILL_STATIC
  [ "$static" = auto ] && { [ "$BROKER_EVICTS" = 1 ] && static=0 || static=1; }
  if [ "$static" = 1 ]; then
    # a restarted member with the same group.instance.id takes over the
    # killed one's partitions at once (KIP-345), no session expiry needed
    write_config engine-a 19811 '"group.instance.id" = "faults-kill-a"'
    meta membership "static (group.instance.id): the broker does not evict SIGKILLed members (see the run's broker check)"
  else
    meta membership "dynamic: a killed member holds its partitions until session.timeout.ms"
  fi
  receiver_start
  stream_slice "$FAULTS_EVENTS" "$FDIR/events.jsonl"
  produce load --file "$FDIR/events.jsonl"
  meta "events produced" "$FAULTS_EVENTS before the engine starts (s200k-style stream, original event times)"
  monitor_start engine-a
  local per=$((2 * FAULTS_EVENTS / (FAULTS_KILLS + 1))) k target waited
  mark fault_start
  for k in $(seq 1 "$FAULTS_KILLS"); do
    engine_start engine-a
    target=$(rand 0 "$per")
    waited=0
    # wait for `target` acks of this process (or 60 s, or the process to exit)
    while alive "$(engine_pid engine-a)" && [ "$waited" -lt 300 ]; do
      local acked; acked=$(metric engine-a earshot_events_acked_total)
      [ -n "$acked" ] && [ "$acked" -ge "$target" ] && break
      sleep 0.2; waited=$((waited + 1))
    done
    sleep "$(randf 0 1)"
    echo "kill $k/$FAULTS_KILLS: target $target acks" >>"$FDIR/kills.txt"
    engine_kill engine-a
  done
  mark fault_end
  # members killed without leaving hold their partitions until their session
  # times out; --until-idle would otherwise finish the partitions it got and stop
  sleep $((FAULTS_SESSION_TIMEOUT_MS / 1000 + 3))
  mark final_start
  engine_start engine-a --until-idle 10 --assignment-timeout 120
  engine_wait engine-a "$FAULTS_DRAIN_TIMEOUT_S" || engine_stop engine-a
  if ! drained; then
    meta "final run" "the --until-idle run stopped with group lag $(group_lag); ran it once more"
    engine_start engine-a --until-idle 10 --assignment-timeout 120
    engine_wait engine-a "$FAULTS_DRAIN_TIMEOUT_S" || engine_stop engine-a
  fi
  wait_drained 30 || true
  monitor_stop engine-a
  meta kills "$FAULTS_KILLS SIGKILLs; acks before each kill: $(grep -o 'acked=[0-9]*' "$FDIR/events.txt" | cut -d= -f2 | tr '\n' ' ')"
  meta "session.timeout.ms" "$FAULTS_SESSION_TIMEOUT_MS"
  fault_end_common
}

# broker: producer at FAULTS_BROKER_RATE/s (event time = now) for
# PRE + DOWN + POST seconds; the broker stopped after PRE for DOWN seconds.
# The engine runs under a supervisor (restarted 2 s after any exit, as
# systemd or Kubernetes would); exits are listed in the report.
fault_broker() {
  fault_begin broker
  receiver_start
  local total=$((FAULTS_BROKER_PRE_S + FAULTS_BROKER_DOWN_S + FAULTS_BROKER_POST_S))
  produce_bg live --file "$STREAM" --rate "$FAULTS_BROKER_RATE" --duration "$total" --live-times \
    --id-prefix B --timeout-ms $(( (FAULTS_BROKER_DOWN_S + 240) * 1000 )) --flush-timeout $((FAULTS_BROKER_DOWN_S + 300))
  engine_supervise engine-a
  monitor_start engine-a
  sleep "$FAULTS_BROKER_PRE_S"
  mark fault_start
  broker_stop
  sleep "$FAULTS_BROKER_DOWN_S"
  broker_start
  mark fault_end
  producer_wait live
  mark producer_done
  wait_drained "$FAULTS_DRAIN_TIMEOUT_S" || true
  sleep 3
  engine_stop engine-a
  monitor_stop engine-a
  meta "broker outage" "${FAULTS_BROKER_DOWN_S} s (${FAULTS_BROKER} stopped with SIGTERM, data kept, restarted) with the producer at ${FAULTS_BROKER_RATE}/s for ${total} s"
  fault_end_common
}

# second: events at FAULTS_SECOND_RATE/s for 3 phases of
# FAULTS_SECOND_PHASE_S: engine A alone, A + B (same group), A alone after B's
# SIGTERM.
fault_second() {
  fault_begin second
  receiver_start
  local total=$((3 * FAULTS_SECOND_PHASE_S))
  produce_bg paced --file "$STREAM" --rate "$FAULTS_SECOND_RATE" --duration "$total" --id-prefix S
  engine_supervise engine-a
  monitor_start engine-a
  sleep "$FAULTS_SECOND_PHASE_S"
  mark fault_start
  engine_start engine-b
  monitor_start engine-b
  sleep "$FAULTS_SECOND_PHASE_S"
  meta "B before SIGTERM" "assigned $(metric engine-b earshot_kafka_assigned_partitions), acked $(metric engine-b earshot_events_acked_total)"
  local t0=$SECONDS
  engine_stop engine-b
  meta "B's shutdown" "$((SECONDS - t0)) s from SIGTERM to exit"
  mark fault_end
  monitor_stop engine-b
  producer_wait paced
  wait_drained "$FAULTS_DRAIN_TIMEOUT_S" || true
  sleep 3
  engine_stop engine-a
  monitor_stop engine-a
  meta "rate" "${FAULTS_SECOND_RATE}/s for ${total} s; B in the group from ${FAULTS_SECOND_PHASE_S} s to $((2 * FAULTS_SECOND_PHASE_S)) s"
  fault_end_common
}

# webhook: the receiver down for FAULTS_WEBHOOK_DOWN_S while the events that
# make alerts fire are produced (paced over the outage); with
# FAULTS_WEBHOOK_RESTART=1 the engine is also restarted (SIGTERM) halfway,
# so what arrives afterwards comes from the outbox file of a new process.
fault_webhook() {
  fault_begin webhook
  receiver_start
  stream_slice "$FAULTS_WEBHOOK_EVENTS" "$FDIR/events.jsonl"
  local first=$((FAULTS_WEBHOOK_EVENTS / 10))
  head -n "$first" "$FDIR/events.jsonl" >"$FDIR/part1.jsonl"
  tail -n +"$((first + 1))" "$FDIR/events.jsonl" >"$FDIR/part2.jsonl"
  engine_supervise engine-a
  monitor_start engine-a
  # part 1 with the receiver up: some alerts delivered before the outage
  produce part1 --file "$FDIR/part1.jsonl"
  wait_drained 300 || true
  has_posts() { [ "$(receiver_posts)" -gt 0 ]; }
  wait_for 60 "a first delivery" has_posts || true
  sleep 2
  meta "before the outage" "$(receiver_posts) POSTs received"
  mark fault_start
  receiver_down
  local rate; rate=$(python3 -c "print(max(1, round(($FAULTS_WEBHOOK_EVENTS - $first) / ($FAULTS_WEBHOOK_DOWN_S * 0.8), 1)))")
  produce_bg part2 --file "$FDIR/part2.jsonl" --rate "$rate"
  if [ "$FAULTS_WEBHOOK_RESTART" = 1 ]; then
    # a third into the outage: SIGTERM waits up to drain_timeout for the
    # outbox (it cannot empty), then the supervisor starts a new process,
    # which must deliver from the outbox file once the receiver is back
    local third=$((FAULTS_WEBHOOK_DOWN_S / 3)) t_down=$SECONDS
    sleep "$third"
    meta "mid-outage restart" "SIGTERM at +${third} s with $(metric engine-a earshot_outbox_depth) outbox entries pending"
    mark restart_engine
    local old; old=$(engine_pid engine-a)
    kill -TERM "$old"     # the supervisor starts it again
    while [ "$(engine_pid engine-a)" = "$old" ] && [ $((SECONDS - t_down)) -lt "$FAULTS_WEBHOOK_DOWN_S" ]; do sleep 0.5; done
    if [ "$(engine_pid engine-a)" != "$old" ]; then
      meta "new engine process" "up at +$((SECONDS - t_down)) s of the outage: what arrives afterwards comes from its outbox file"
    else
      meta "new engine process" "not before the receiver returned (the old one was still draining): use FAULTS_WEBHOOK_DOWN_S >= 3 x 35 s"
    fi
    sleep $((FAULTS_WEBHOOK_DOWN_S - (SECONDS - t_down) > 0 ? FAULTS_WEBHOOK_DOWN_S - (SECONDS - t_down) : 0))
  else
    sleep "$FAULTS_WEBHOOK_DOWN_S"
  fi
  meta "outbox at the end of the outage" "$(metric engine-a earshot_outbox_depth) entries"
  local before; before=$(receiver_posts)
  receiver_start
  mark fault_end
  producer_wait part2
  wait_drained "$FAULTS_DRAIN_TIMEOUT_S" || true
  # deliveries: until the outbox is empty (backoff is at most 30 s)
  outbox_empty() { [ "$(metric engine-a earshot_outbox_depth)" = 0 ]; }
  wait_for 600 "the outbox to empty" outbox_empty || true
  sleep 2
  meta "receiver_first_post_after" "$(python3 -c "
import json,sys
t=[json.loads(l)['t'] for l in open('$FDIR/receiver.jsonl')][$before:]
print(min(t) if t else '')")"
  meta "receiver_last_post" "$(python3 -c "
import json
t=[json.loads(l)['t'] for l in open('$FDIR/receiver.jsonl')]
print(max(t) if t else '')")"
  meta "outage" "${FAULTS_WEBHOOK_DOWN_S} s (receiver SIGKILLed, port closed); $((FAULTS_WEBHOOK_EVENTS - first)) events at ${rate}/s during it; engine restart mid-outage: $FAULTS_WEBHOOK_RESTART; sink max_attempts ${FAULTS_SINK_MAX_ATTEMPTS:-default}"
  engine_stop engine-a
  monitor_stop engine-a
  fault_end_common
}

# load: capacity on a backlog of FAULTS_CAPACITY_EVENTS (acks per second of
# the engine between its first ack and the backlog's end), then a producer
# at FAULTS_LOAD_FACTOR x capacity for FAULTS_LOAD_S (event time = now), then
# the drain.
fault_load() {
  fault_begin load
  receiver_start
  produce capacity --file "$STREAM" --limit "$FAULTS_CAPACITY_EVENTS" --id-prefix C
  engine_supervise engine-a
  monitor_start engine-a
  local t0="" a deadline=$((SECONDS + 600))
  while [ "$SECONDS" -lt "$deadline" ]; do
    a=$(metric engine-a earshot_events_acked_total)
    [ -z "$t0" ] && [ -n "$a" ] && [ "$a" -gt 0 ] && t0=$(stamp) && a0=$a
    [ -n "$a" ] && [ "$a" -ge "$FAULTS_CAPACITY_EVENTS" ] && break
    sleep 0.2
  done
  local t1; t1=$(stamp)
  local cap; cap=$(python3 -c "print(int(($FAULTS_CAPACITY_EVENTS - $a0) / max(0.1, $t1 - $t0)))")
  local rate=$((cap * FAULTS_LOAD_FACTOR))
  meta "engine capacity" "$cap events/s (backlog of $FAULTS_CAPACITY_EVENTS, from the first ack to the last)"
  wait_drained 120 || true
  mark fault_start
  produce_bg load --file "$STREAM" --rate "$rate" --duration "$FAULTS_LOAD_S" --live-times --id-prefix L
  # sample group membership while the producer runs
  local rb0; rb0=$(metric engine-a earshot_kafka_rebalances_total)
  producer_wait load
  mark fault_end
  local rb1; rb1=$(metric engine-a earshot_kafka_rebalances_total)
  meta "input rate" "target $rate/s = ${FAULTS_LOAD_FACTOR} x capacity; achieved: see producer line (the producer shares the CPU with the engine and the broker)"
  meta "rebalances during the load" "$((${rb1:-0} - ${rb0:-0})) (counter $rb0 → $rb1)"
  meta "min assigned partitions during the load" "$(python3 -c "
import csv
r=[x for x in csv.DictReader(open('$FDIR/engine-a.samples.csv')) if x['assigned'] and float(x['t'])>=$(awk '$2=="fault_start"{print $1}' "$FDIR/events.txt")]
print(min(int(x['assigned']) for x in r) if r else '–')")"
  local lagmax; lagmax=$(group_lag)
  meta "group lag when the producer stopped" "$lagmax"
  local dt=$FAULTS_DRAIN_TIMEOUT_S
  [ "$cap" -gt 0 ] && [ "$lagmax" -gt 0 ] && dt=$((lagmax / cap * 3 + 300))
  wait_drained "$dt" || true
  sleep 3
  engine_stop engine-a
  monitor_stop engine-a
  fault_end_common
}

# After every fault: read everything back and decide.
fault_end_common() {
  receiver_down >/dev/null 2>&1 || true
  kill -TERM "$(cat "$FDIR/lagmon.pid")" 2>/dev/null || true
  broker_ensure   # a broker broken by this fault is restarted to read back what it kept
  verify || { meta status "VERIFY FAILED"; return 0; }
  local st
  st=$(python3 - "$FDIR/verify.json" "$FDIR/events.txt" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
ev = open(sys.argv[2]).read()
bad, warn = [], []
if v["broker_lost"]: bad.append("broker lost %d" % v["broker_lost"])
if v["earshot_lost"]: bad.append("earshot lost %d" % v["earshot_lost"])
if v.get("receiver_missing_keys"): bad.append("%d alert changes never reached the receiver" % v["receiver_missing_keys"])
if v.get("receiver_missed_resolutions"): bad.append("%d resolutions missed by the receiver" % v["receiver_missed_resolutions"])
if v.get("group_lag_end") or "not_drained" in ev: bad.append("not drained")
if v.get("receiver_only_open"): warn.append("%d alerts firing at the receiver that are not on the alerts topic" % v["receiver_only_open"])
if v.get("duplicates"): warn.append("%d duplicates" % v["duplicates"])
print(("FAIL: " + ", ".join(bad) if bad else "ok") + ("; " + ", ".join(warn) if warn else ""))
PY
)
  meta status "$st"
  log "[$FAULT] $st"
}

# broker_checks: what the broker does with a member that dies without
# leaving the group (confluent-kafka only, no earshot): BROKER_EVICTS=1 when
# a newcomer got partitions within session.timeout.ms + 20 s.
BROKER_EVICTS=1
broker_checks() {
  local wait=$((FAULTS_SESSION_TIMEOUT_MS / 1000 + 20)) t
  log "broker check: does $FAULTS_BROKER evict a SIGKILLed consumer-group member? (up to ${wait}s)"
  t=$("$PY" "$HERE/kafka_tool.py" evictcheck --brokers "$BROKERS" --topic "f$TS-evictcheck" \
      --group "faults-$TS-evictcheck" --session-timeout-ms "$FAULTS_SESSION_TIMEOUT_MS" --wait "$wait" 2>/dev/null || echo -3)
  if python3 -c "import sys; sys.exit(0 if float('$t') >= 0 else 1)"; then
    printf '%s\t%s\n' "eviction of a SIGKILLed group member" "yes: a newcomer got the partitions ${t} s after joining (session.timeout.ms $FAULTS_SESSION_TIMEOUT_MS)" >>"$RUN_DIR/meta.tsv"
  else
    BROKER_EVICTS=0
    printf '%s\t%s\n' "eviction of a SIGKILLed group member" "**no**: a newcomer got no partition within ${wait} s (session.timeout.ms $FAULTS_SESSION_TIMEOUT_MS; result $t) — a broker defect: dynamic members that crash block their group" >>"$RUN_DIR/meta.tsv"
  fi
}

# ------------------------------------------------------------------ main

setup_venv
# The event stream: the one scripts/bench-replay.sh writes (1M events over 28
# days, incident waves, seed 7); its first 200,000 lines are the s200k stream.
SRC="${FAULTS_STREAM:-$EARSHOT_CACHE/bench-replay/stream-1000000.jsonl}"
if [ ! -s "$SRC" ]; then
  [ -n "${FAULTS_STREAM:-}" ] && die "no event stream at $SRC"
  log "generating $SRC with the generator embedded in scripts/bench-replay.sh"
  mkdir -p "$(dirname "$SRC")"
  sed -n "/<<'PY'\$/,/^PY\$/p" "$EARSHOT_ROOT/scripts/bench-replay.sh" | sed '1d;$d' >"$RUN_DIR/gen-stream.py"
  python3 "$RUN_DIR/gen-stream.py" "$EARSHOT_ROOT" 1000000 "$SRC.tmp" "$RUN_DIR/incidents.jsonl"
  mv "$SRC.tmp" "$SRC"
fi
STREAM="$RUN_DIR/stream.jsonl"
head -n "$(( FAULTS_EVENTS > 200000 ? FAULTS_EVENTS : 200000 ))" "$SRC" >"$STREAM"
[ "$(wc -l <"$STREAM")" -ge "$FAULTS_EVENTS" ] || die "$SRC has fewer than FAULTS_EVENTS=$FAULTS_EVENTS lines"

log "fault harness: ${FAULTS[*]} on $FAULTS_BROKER ($BROKERS), earshot $EARSHOT_BIN, run dir $RUN_DIR"
broker_wipe >/dev/null 2>&1 || true
broker_start
: >"$RUN_DIR/faults.txt"
printf '%s\t%s\n' "broker" "$FAULTS_BROKER on $BROKERS" "earshot" "$EARSHOT_BIN ($("$EARSHOT_BIN" --version 2>/dev/null))" \
  "settings" "FAULTS_EVENTS=$FAULTS_EVENTS FAULTS_KILLS=$FAULTS_KILLS FAULTS_BROKER_DOWN_S=$FAULTS_BROKER_DOWN_S FAULTS_SECOND_PHASE_S=$FAULTS_SECOND_PHASE_S FAULTS_WEBHOOK_DOWN_S=$FAULTS_WEBHOOK_DOWN_S FAULTS_LOAD_S=$FAULTS_LOAD_S FAULTS_LOAD_FACTOR=$FAULTS_LOAD_FACTOR" \
  "machine" "$(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB" >"$RUN_DIR/meta.tsv"
if [[ " ${FAULTS[*]} " == *" kill "* ]] && [ "$FAULTS_KILL_STATIC" = auto ]; then broker_checks; fi
for f in "${FAULTS[@]}"; do
  # each fault in a subshell: one that breaks (a helper failing under set -e)
  # is reported as aborted and the next one still runs
  if ! ( "fault_$f" ); then
    log "fault $f aborted; see $RUN_DIR/$f"
    grep -qx "$f" "$RUN_DIR/faults.txt" 2>/dev/null || echo "$f" >>"$RUN_DIR/faults.txt"
    mkdir -p "$RUN_DIR/$f"
    printf 'status\tABORTED (the harness step that failed is the last line of events.txt / the logs)\n' >>"$RUN_DIR/$f/meta.tsv"
  fi
  kill_children
done

python3 "$HERE/report.py" "$RUN_DIR" "$FAULTS_BROKER" >"$REPORT"
cat "$REPORT"
log "report: $REPORT"
! grep -q '| FAIL\|VERIFY FAILED\|ABORTED' "$REPORT"   # duplicates and warnings do not fail the run
