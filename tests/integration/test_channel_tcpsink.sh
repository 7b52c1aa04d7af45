#!/usr/bin/env bash
# A tcp: sink whose destination goes away: records wait in diode-rx's buffer
# (memory, then the state directory) and are sent in order when it is back.
# The destination is stopped while records flow, diode-rx is restarted while
# records wait for it, then the destination returns: it must have received
# every record exactly once, in order.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
in_port=$(free_tcp_port)
dest_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx "channel.hist.sink=tcp://127.0.0.1:$dest_port" "channel.hist.buffer=1M"
make_tx tx "$port" tx rx "channel.hist.listen=tcp://127.0.0.1:$in_port"
mkdir -p "$T/dest"

dest_n=0
start_dest() {
	dest_n=$((dest_n + 1))
	rm -f "$T/dest/ready"
	"$SIM" listen "tcp://127.0.0.1:$dest_port" --out "$T/dest/received" --ready "$T/dest/ready" \
		2>> "$T/dest/stderr.log" &
	DEST_PID=$!
	EXTRA_PIDS+=("$DEST_PID")
	wait_for 10 test -e "$T/dest/ready" || fail "the destination did not start"
}
stop_dest() { # graceful: it half-closes, reads what is on its way, exits
	kill -TERM "$DEST_PID"
	wait "$DEST_PID" || fail "the destination exited with status $?"
}
received() { [ -f "$T/dest/received" ] && wc -l < "$T/dest/received" || echo 0; }
received_at_least() { [ "$(received)" -ge "$1" ]; }

start_dest
start_rx rx
start_tx tx

log "phase 1: 6000 records at 2000/s; the destination stops half way"
"$SIM" send "tcp://127.0.0.1:$in_port" --count 6000 --rate 2000 --numbered \
	--copy "$T/sent.0" 2> "$T/sim-1.log" &
sim_pid=$!
EXTRA_PIDS+=("$sim_pid")
wait_for 20 received_at_least 2000 || fail "records did not reach the destination"
stop_dest
log "destination stopped after $(received) records"
wait "$sim_pid" || fail "phase 1 sender failed"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" sink_down 1 || fail "no sink_down event"

log "phase 2: 4000 more records while the destination is away"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 1 --count 4000 --rate 4000 --numbered \
	--copy "$T/sent.1" 2> "$T/sim-2.log"
sleep 1 # let them cross the diode into diode-rx's buffer

log "restarting diode-rx while records wait for the destination"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
start_rx rx
# Records sent before diode-rx holds the session key again would be lost (and
# reported so): wait for the next announce.
wait_for 10 audit_at_least "$T/rx/audit.jsonl" session_started 2 || fail "diode-rx did not rejoin the session"

log "phase 3: 2000 more records, then the destination comes back"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 2 --count 2000 --rate 4000 --numbered \
	--copy "$T/sent.2" 2> "$T/sim-3.log"
sleep 0.5
# `diode-rx status` shows the sink down and the records waiting for it.
sink_waiting() {
	"$BIN/diode-rx" -c "$T/rx/conf" status > "$T/status.txt" 2>&1
	grep -Eq "^    sink tcp://127\.0\.0\.1:$dest_port: (down|connecting), [1-9][0-9]* records waiting, 0 dropped$" "$T/status.txt" &&
		grep -Eq '^  channel hist: [0-9]+ delivered, 0 lost in 0 gaps' "$T/status.txt"
}
wait_for 5 sink_waiting || { cat "$T/status.txt"; fail "status does not show the sink down with records waiting"; }
log "status: $(grep '^    sink ' "$T/status.txt" | sed 's/^ *//')"
start_dest
wait_for 30 received_at_least 12000 || fail "only $(received) of 12000 records reached the destination"
sleep 1 # duplicates would show now
stop_dest
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"

cat "$T/sent.0" "$T/sent.1" "$T/sent.2" > "$T/sent.all"
if ! cmp -s "$T/sent.all" "$T/dest/received"; then
	python3 - "$T/sent.all" "$T/dest/received" <<'PY'
import sys
a = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
b = open(sys.argv[2], "rb").read().split(b"\n")[:-1]
print(f"sent {len(a)}, received {len(b)}, distinct received {len(set(b))}, "
      f"missing {len(set(a) - set(b))}", file=sys.stderr)
for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
        print(f"first difference at record {i}: sent {x[:50]!r}, received {y[:50]!r}", file=sys.stderr)
        break
PY
	fail "the destination did not receive every record exactly once and in order"
fi
log "the destination received all 12000 records, once each, in order"
[ "$(audit_count "$T/rx/audit.jsonl" records_lost)" = 0 ] || fail "records reported lost"
[ "$(audit_count "$T/rx/audit.jsonl" records_dropped)" = 0 ] || fail "records dropped by the sink"
audit_at_least "$T/rx/audit.jsonl" sink_up 2 || fail "fewer than two sink_up events"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
