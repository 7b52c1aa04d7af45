#!/usr/bin/env bash
# Overflow: a link of 100 kbit/s, a 16 KiB buffer and no journal, and a flood
# of 20 000 records on each of two channels, one drop-oldest, one
# drop-newest. The producers are never blocked (they finish, and diode-tx
# takes every record they sent: each is delivered or counted as dropped), the
# policy decides which records survive, the receiver hears of the drops, and
# records sent after the flood are delivered.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
old_port=$(free_tcp_port)
new_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink-old" "$T/sink-new"
make_rx rx "$port" rx tx "channel.old.sink=dir:$T/sink-old" "channel.new.sink=dir:$T/sink-new"
make_tx tx "$port" tx rx "link.rate=100k" \
	"channel.old.listen=tcp://127.0.0.1:$old_port" "channel.old.buffer=16K" "channel.old.max_record=1K" \
	"channel.old.journal=0" "channel.old.overflow=drop-oldest" \
	"channel.new.listen=tcp://127.0.0.1:$new_port" "channel.new.buffer=16K" "channel.new.max_record=1K" \
	"channel.new.journal=0" "channel.new.overflow=drop-newest"
start_rx rx
start_tx tx

log "flooding both channels with 20000 records each, as fast as possible"
for ch in old new; do
	p=old_port
	[ "$ch" = new ] && p=new_port
	"$SIM" send "tcp://127.0.0.1:${!p}" --count 20000 --rate 0 --size 100 --numbered \
		--copy "$T/flood-$ch" 2> "$T/sim-$ch.log" &
	eval "pid_$ch=$!"
	EXTRA_PIDS+=("$!")
done
# Liveness, not timing: a producer that diode-tx stopped reading would hang.
wait_for 60 _gone "$pid_old" || fail "the drop-oldest producer was blocked"
wait_for 60 _gone "$pid_new" || fail "the drop-newest producer was blocked"
wait "$pid_old" || fail "the drop-oldest producer failed"
wait "$pid_new" || fail "the drop-newest producer failed"
cat "$T/sim-old.log" "$T/sim-new.log"

# Delivery resumes once the buffered records have crossed: probe with one
# record every second until one arrives (with drop-newest, those sent while
# the buffer is still full are dropped, and counted), then send 20 more.
for ch in old new; do
	p=old_port
	[ "$ch" = new ] && p=new_port
	: > "$T/probes-$ch"
	for i in $(seq 1 120); do
		"$SIM" send "tcp://127.0.0.1:${!p}" --client-base 1 --count 1 --rate 0 \
			--prefix PROBE --copy "$T/probe" 2> /dev/null
		cat "$T/probe" >> "$T/probes-$ch"
		wait_for 1 sink_contains "$T/sink-$ch" "$(cat "$T/probe")" && break
	done
	sink_contains "$T/sink-$ch" "$(cat "$T/probe")" || fail "[channel.$ch]: delivery did not resume"
	log "[channel.$ch] delivery resumed after $(wc -l < "$T/probes-$ch") probes; 20 more records"
	"$SIM" send "tcp://127.0.0.1:${!p}" --client-base 2 --count 20 --rate 0 --numbered \
		--prefix AFTER --copy "$T/after-$ch" 2> /dev/null
	wait_for 120 sink_contains "$T/sink-$ch" "$(tail -n 1 "$T/after-$ch")" ||
		fail "[channel.$ch]: the records sent after the flood did not arrive"
done
sleep 1.5 # the receiver hears the drop counters in the next stream status
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"

python3 - "$T" <<'PY' || fail "drops not accounted as the policy says"
import json, os, sys
t = sys.argv[1]
def events(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
tx, rx = events(f"{t}/tx/audit.jsonl"), events(f"{t}/rx/audit.jsonl")
problems = []
for ch in ("old", "new"):
    flood = open(f"{t}/flood-{ch}", "rb").read().split(b"\n")[:-1]
    probes = open(f"{t}/probes-{ch}", "rb").read().split(b"\n")[:-1]
    after = open(f"{t}/after-{ch}", "rb").read().split(b"\n")[:-1]
    got = []
    for n in sorted(os.listdir(f"{t}/sink-{ch}")):
        got += open(f"{t}/sink-{ch}/{n}", "rb").read().split(b"\n")[:-1]
    pos = {r: i for i, r in enumerate(flood + probes + after)}
    idx = [pos.get(r, -1) for r in got]
    if -1 in idx or idx != sorted(set(idx)):
        problems.append(f"{ch}: foreign, repeated or reordered records")
    delivered = set(idx)
    if not all(pos[r] in delivered for r in after):
        problems.append(f"{ch}: records after the flood missing")
    stopped = [e for e in tx if e["event"] == "channel_stopped" and e["channel"] == ch]
    dropped_events = sum(e["count"] for e in tx if e["event"] == "records_dropped" and e["channel"] == ch)
    total = len(flood) + len(probes) + len(after)
    if len(stopped) != 1:
        problems.append(f"{ch}: {len(stopped)} channel_stopped events")
        continue
    dropped = stopped[0]["dropped"]
    if dropped == 0:
        problems.append(f"{ch}: nothing dropped: the flood did not overflow")
    if dropped != dropped_events:
        problems.append(f"{ch}: records_dropped events count {dropped_events}, the total is {dropped}")
    if len(delivered) + dropped != total:
        problems.append(f"{ch}: {len(delivered)} delivered + {dropped} dropped != {total} sent")
    if ch == "old" and (0 in delivered or len(flood) - 1 not in delivered):
        problems.append("drop-oldest: the first flood record arrived or the last did not")
    if ch == "new" and (0 not in delivered or len(flood) - 1 in delivered):
        problems.append("drop-newest: the first flood record did not arrive or the last did")
    heard = sum(e["count"] for e in rx if e["event"] == "sender_dropped" and e["channel"] == ch)
    if heard != dropped:
        problems.append(f"{ch}: diode-rx heard of {heard} dropped records, diode-tx dropped {dropped}")
    print(f"[channel.{ch}] {total} sent: {len(delivered)} delivered, {dropped} dropped and counted")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
PY
[ "$(audit_count "$T/rx/audit.jsonl" records_lost)" = 0 ] || fail "records lost on the link"
audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
