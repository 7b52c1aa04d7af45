#!/usr/bin/env bash
# Restarts on a slow link: diode-tx is stopped with records still waiting; they
# are kept in its journal and sent by the next start, numbering goes on across
# the sessions, and what was numbered but could not leave before the stop is
# reported lost by the receiver (never silently missing). Then diode-rx is
# restarted while records flow: what was sent while it was down is reported.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
in_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink"
make_rx rx "$port" rx tx "channel.hist.sink=dir:$T/sink"
make_tx tx "$port" tx rx "link.rate=300k" "channel.hist.listen=tcp://127.0.0.1:$in_port" \
	"channel.hist.max_record=1K" "channel.hist.buffer=16K" "channel.hist.journal=1M"
start_rx rx
start_tx tx

log "3000 records into a 300 kbit/s link: most wait in the journal"
"$SIM" send "tcp://127.0.0.1:$in_port" --count 3000 --rate 0 --size 100 --numbered \
	--copy "$T/sent.0" 2> "$T/sim-1.log"
wait_for 30 sink_has "$T/sink" 1 || fail "nothing arrived"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
journaled=$(python3 -c 'import json, sys
print([e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "channel_stopped"][-1]["journaled"])' "$T/tx/audit.jsonl")
[ "$journaled" -gt 0 ] || fail "nothing was kept in the journal at stop"
log "diode-tx stopped with $journaled records in its journal; starting it again"
start_tx tx
audit_at_least "$T/tx/audit.jsonl" channel_started 1 "recovered=$journaled" ||
	fail "the journal's $journaled records were not recovered"
wait_for 120 sink_contains "$T/sink" "$(tail -n 1 "$T/sent.0")" ||
	fail "the journaled records did not arrive after the restart"

log "diode-rx restarts while 400 more records flow"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 1 --count 400 --rate 100 --numbered \
	--copy "$T/sent.1" 2> "$T/sim-2.log" &
sim=$!
EXTRA_PIDS+=("$sim")
sleep 1
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
sleep 1
start_rx rx
wait "$sim" || fail "the second sender failed"
wait_for 60 sink_contains "$T/sink" "$(tail -n 1 "$T/sent.1")" ||
	fail "records after the diode-rx restart did not arrive"
sleep 1.5
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"

check_sink "$T/sink" "$T/sent" 2 1 || fail "records repeated, reordered or foreign"
python3 - "$T" <<'PY' || fail "the records that did not arrive are not exactly those reported lost"
import json, os, sys
t = sys.argv[1]
order = []
for c in range(2):
    order += open(f"{t}/sent.{c}", "rb").read().split(b"\n")[:-1]
seq_of = {r: i for i, r in enumerate(order)}
delivered = set()
for n in sorted(os.listdir(f"{t}/sink")):
    for r in open(f"{t}/sink/{n}", "rb").read().split(b"\n")[:-1]:
        delivered.add(seq_of[r])
named = set()
lost = []
for e in map(json.loads, open(f"{t}/rx/audit.jsonl")):
    if e["event"] == "records_lost":
        r = set(range(e["first"], e["last"] + 1))
        assert not r & named and not r & delivered, e
        named |= r
        lost.append((e["first"], e["last"], e["reason"]))
missing = set(range(len(order))) - delivered
if missing != named:
    print(f"missing but not reported: {sorted(missing - named)[:10]}; reported but arrived or "
          f"never sent: {sorted(named - missing)[:10]}", file=sys.stderr)
    sys.exit(1)
if not any(3000 <= f for f, l, _ in lost):
    print(f"no loss reported across the diode-rx restart: {lost}", file=sys.stderr)
    sys.exit(1)
print(f"{len(delivered)} of {len(order)} records arrived; the {len(missing)} others are "
      f"named in records_lost: {lost}")
PY
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
