#!/usr/bin/env bash
# `diode-rx -c FILE status` for an operator, through linksim (2 % loss):
#   no status file yet              -> non-zero, says so
#   running, nothing received yet   -> link never-up, non-zero
#   files flowing through loss      -> link up, the session, lost > 0, FEC
#                                      repairs, files delivered; healthy, exit 0
#   a forced failure (a 1.5 s blackout in the middle of a large file, and of
#   a stream of records on channel hist)
#                                   -> the failure listed with its path, the
#                                      channel with its lost records, exit 1
#   diode-tx stopped                -> link down, exit 1
#   diode-tx started again          -> a new session: link up, the session's
#                                      counters at 0, but the failure and the
#                                      loss are recent: still exit 1
#   diode-rx stopped                -> STALE, exit 1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
p_in=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink"
make_rx rx "$p_rx" rx tx "link.timeout=2s" "channel.hist.sink=dir:$T/sink"
make_tx tx "$p_sim" tx rx "link.rate=50M" "link.fec_data=64" "link.fec_parity=16" \
	"link.interleave=16" "link.repeat=1" "channel.hist.listen=tcp://127.0.0.1:$p_in"
# Four files larger than one interleaved group (16 x 64 x 1408 bytes): full
# 64 + 16 blocks, which 2 % random loss cannot sink.
mkdir -p "$T/src/small" "$T/src/big"
for i in 1 2 3 4; do
	random_file "$T/src/small/s$i.bin" $((1536 * 1024 + i))
done
random_file "$T/src/big/large.bin" $((16 * 1024 * 1024))

status() { "$BIN/diode-rx" -c "$T/rx/conf" status > "$T/status.txt" 2>&1; }
status_rc() {
	local rc=0
	status || rc=$?
	echo "$rc"
}
show() { sed 's/^/    /' "$T/status.txt"; }
# status_is RC REGEX...: the command exits RC and its output matches each REGEX.
status_is() {
	local want=$1 re rc
	shift
	rc=$(status_rc)
	[ "$rc" = "$want" ] || return 1
	for re in "$@"; do
		grep -Eq -- "$re" "$T/status.txt" || return 1
	done
}

rc=$(status_rc)
[ "$rc" != 0 ] || fail "status exits 0 before diode-rx ever ran"
grep -q 'is diode-rx running' "$T/status.txt" || fail "status without a status file: $(cat "$T/status.txt")"

start_rx rx
wait_for 5 status_is 1 'link: +never-up' 'ATTENTION' ||
	{ show; fail "status before any datagram: expected link never-up and exit 1"; }
log "before any datagram: exit 1, link never-up"

start_linksim sim "$p_sim" "$p_rx" --seed 61 --loss 0.02 --blackout 7:8.5
start_tx tx
t0=$(date +%s%N)
session=$(python3 -c '
import json, sys
print([e for e in map(json.loads, open(sys.argv[1], encoding="utf-8"))
       if e["event"] == "session_started"][0]["session"])' "$T/tx/audit.jsonl")
mkdir -p "$T/pub1" "$T/pub2"
cp -a "$T/src/small" "$T/pub1/"
publish "$T/pub1" "$T/tx/outbox"
wait_for 15 audit_at_least "$T/rx/audit.jsonl" file_delivered 4 || fail "files not delivered"
lost_positive() {
	status_is 0 'link: +up' "session: +$session" 'files: +4 delivered, 0 failed' 'verdict: +healthy' &&
		grep -Eq 'datagrams: +[0-9]+ accepted, [1-9][0-9]* lost' "$T/status.txt"
}
wait_for 5 lost_positive || { show; fail "status under 2 % loss: expected healthy, link up, lost > 0"; }
grep -Eq '^  channel hist: 0 delivered, 0 lost in 0 gaps \(0 blocks\), 0 dropped by diode-tx; last loss: never$' "$T/status.txt" &&
	grep -Eq "^    sink dir:$T/sink: ok, 0 records waiting, 0 dropped$" "$T/status.txt" ||
	{ show; fail "status before any record: expected channel hist with zero counters and its sink"; }
log "healthy under loss: exit 0"
show

# Forced failure: the large file is on the wire for about 3 s at 50 Mb/s
# from 5.5 s on, and the link is blacked out from 7 to 8.5 s (shorter than
# the 2 s link timeout: the link stays up, the file cannot be repaired).
later_than() { [ $((($(date +%s%N) - t0) / 1000000)) -gt "$1" ]; }
wait_for 10 later_than 5500 || fail "clock?"
cp -a "$T/src/big" "$T/pub2/"
publish "$T/pub2" "$T/tx/outbox"
# Records from 5.5 to 9.5 s, through the blackout.
"$SIM" send "tcp://127.0.0.1:$p_in" --count 4000 --rate 1000 --quiet 2> "$T/sim.log" &
sim_pid=$!
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_failed 1 "path=big/large.bin" ||
	fail "the blackout did not make big/large.bin fail; rx audit: $(grep file_ "$T/rx/audit.jsonl" | tail -3)"
wait "$sim_pid" || fail "sim-historian send failed: $(cat "$T/sim.log")"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" records_lost 1 "channel=hist" ||
	fail "the blackout did not lose records of channel hist"
wait_for 5 status_is 1 'recent failures:' 'big/large.bin: ' '1 failed' 'ATTENTION' \
	'^  channel hist: [1-9][0-9]* delivered, [1-9][0-9]* lost in [1-9][0-9]* gaps? \([0-9]+ blocks\)' \
	'last loss: [0-9]+ s ago' 'records: +[1-9][0-9]* delivered, [1-9][0-9]* lost' \
	'ATTENTION NEEDED \(files failed this session; records lost [0-9]+ s ago\)' ||
	{ show; fail "status after a failure: expected it listed with its path, channel hist with lost records, and exit 1"; }
log "after a failure: exit 1, failure listed, channel hist with its lost records"
show

stop_daemon tx || fail "diode-tx exited with status $?"
wait_for 8 status_is 1 'link: +down' || { show; fail "status after diode-tx stopped: expected link down"; }
log "sender stopped: link down, exit 1"

# A new session resets the session's counters; the failure and the loss are
# still recent, listed, and keep the verdict at attention.
start_tx tx
new_session() {
	status_is 1 'link: +up' 'files: +0 delivered, 0 failed' 'big/large.bin: ' &&
		! grep -Eq "session: +$session," "$T/status.txt"
}
wait_for 10 new_session || { show; fail "status after diode-tx restarted: expected a new session, link up"; }
grep -Eq 'ATTENTION NEEDED \(a file failed [0-9]+ s ago; records lost [0-9]+ s ago\)' "$T/status.txt" ||
	{ show; fail "status in a new session after a recent failure: expected attention, with both reasons"; }
log "sender restarted: new session, counters reset, still exit 1 (recent failure and loss)"
show
stop_daemon tx || fail "diode-tx exited with status $?"

stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
wait_for 10 status_is 1 'STALE' || { show; fail "status after diode-rx stopped: expected STALE"; }
log "receiver stopped: STALE, exit 1"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
