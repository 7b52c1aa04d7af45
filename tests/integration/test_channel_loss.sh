#!/usr/bin/env bash
# Loss beyond repair on a stream channel, through the link simulator: a
# blackout in the middle of a steady stream, and a short burst whose blocks
# are all lost with nothing after it (tail loss, found through the sender's
# stream status). Every record that did not arrive must be named in a
# records_lost event (channel, first, last, count), no record that arrived may
# be named, and records after each gap keep flowing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

rx_port=$(free_udp_port)
sim_port=$(free_udp_port)
in_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink"
make_rx rx "$rx_port" rx tx "channel.hist.sink=dir:$T/sink"
make_tx tx "$sim_port" tx rx "channel.hist.listen=tcp://127.0.0.1:$in_port" "link.rate=100M"
start_rx rx
# Times are seconds after the first datagram (diode-tx's first announce):
# everything is dropped from 3 to 4 s, and again from 7 to 9 s.
start_linksim sim "$sim_port" "$rx_port" --blackout 3:4 --loss 1 --loss-window 7:9
start_tx tx
t0=$(date +%s%N)
at() { # sleep until $1 seconds after diode-tx started
	local wait_ns=$((t0 + ${1/./} * 100000000 - $(date +%s%N)))
	[ "$wait_ns" -gt 0 ] && sleep "$(printf '%d.%09d' $((wait_ns / 1000000000)) $((wait_ns % 1000000000)))"
	return 0
}

at 0.5
log "phase A: 5000 records at 1000/s through the first blackout"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 0 --count 5000 --rate 1000 --numbered \
	--copy "$T/sent.0" 2> "$T/sim-a.log"
at 7.8
log "phase B: a burst of 100 records inside the second outage, then silence"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 1 --count 100 --rate 0 --numbered \
	--copy "$T/sent.1" 2> "$T/sim-b.log"
at 10.0
log "phase C: 500 more records after it"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 2 --count 500 --rate 1000 --numbered \
	--copy "$T/sent.2" 2> "$T/sim-c.log"

wait_for 30 sink_contains "$T/sink" "$(tail -n 1 "$T/sent.2")" ||
	fail "the last record of phase C did not arrive"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" records_lost 2 ||
	fail "fewer than two records_lost events"
sleep 1.5 # one more stream status
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon sim || true
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
log "link simulator: $(linksim_stat sim dropped_blackout) dropped in the blackout, $(linksim_stat sim dropped_loss) in the loss window"

check_sink "$T/sink" "$T/sent" 3 1 || fail "records out of order, repeated or foreign"
python3 - "$T/sink" "$T/sent" "$T/rx/audit.jsonl" <<'PY' || fail "the records_lost reports do not match what is missing"
import json, os, re, sys
sink, sent, audit = sys.argv[1:4]
# diode-tx numbered the records in the order it took them: A, then B, then C.
order = []
for c in range(3):
    with open(f"{sent}.{c}", "rb") as f:
        order += f.read().split(b"\n")[:-1]
seq_of = {r: i for i, r in enumerate(order)}
delivered = set()
for n in sorted(os.listdir(sink)):
    with open(os.path.join(sink, n), "rb") as f:
        for r in f.read().split(b"\n")[:-1]:
            delivered.add(seq_of[r])
lost = []
for line in open(audit, encoding="utf-8"):
    e = json.loads(line)
    if e["event"] == "records_lost":
        assert e["channel"] == "hist", e
        assert e["count"] == e["last"] - e["first"] + 1, e
        lost.append((e["first"], e["last"]))
named = set()
problems = []
for first, last in lost:
    rng = set(range(first, last + 1))
    if rng & named:
        problems.append(f"range {first}..{last} reported twice")
    if rng & delivered:
        problems.append(f"range {first}..{last} reported lost, but {len(rng & delivered)} of it arrived")
    named |= rng
missing = set(range(len(order))) - delivered
if missing - named:
    m = sorted(missing - named)
    problems.append(f"{len(m)} records missing without a report, e.g. seq {m[:5]}")
if named - set(range(len(order))):
    problems.append(f"reported lost but never sent: {sorted(named - set(range(len(order))))[:5]}")
a, b, c = range(0, 5000), range(5000, 5100), range(5100, 5600)
mid = [r for r in lost if r[0] > 0 and r[1] < 4999]
if not mid:
    problems.append(f"no gap inside phase A: {lost}")
elif not any(s in delivered for s in range(mid[0][1] + 1, 5000)):
    problems.append("no record of phase A arrived after its gap")
if 5099 not in named:
    problems.append(f"the tail of phase B (seq 5099) was not reported lost: {lost}")
if not all(s in delivered for s in c):
    problems.append("phase C did not arrive complete after the tail loss")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"{len(delivered)} records arrived; {len(missing)} missing, all named in {len(lost)} "
      f"records_lost events: {lost}")
PY
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
