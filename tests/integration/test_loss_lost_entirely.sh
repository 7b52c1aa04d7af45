#!/usr/bin/env bash
# A blackout (linksim --blackout 2:7 s) covers the whole transfer of a small
# file: its manifest, data, final manifest and the first repeats of the final
# manifest (+0.1, +0.4, +1.4 s) are all lost. Announces and beacons go on
# after the blackout, and the receiver reports the transfer as file_failed,
# at least by its transfer id (the sender's id for it), by path too if a later
# manifest repeat (+5, +15 s) got through first; within a few seconds after
# the link came back. Files sent after the blackout are delivered.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx "link.timeout=3s"
make_tx tx "$p_sim" tx rx "link.rate=100M" "link.repeat=1"
mkdir -p "$T/src/before" "$T/src/lost" "$T/src/after"
random_file "$T/src/before/warm-up.bin" 50000
random_file "$T/src/lost/small.bin" 8000
random_file "$T/src/after/later.bin" 300000

start_rx rx
# The blackout counts from the first datagram linksim sees (diode-tx's first
# announce, right at its start).
start_linksim sim "$p_sim" "$p_rx" --seed 51 --blackout 2:7
start_tx tx
t0=$(date +%s%N)
since() { echo $((($(date +%s%N) - t0) / 1000000)); } # ms since diode-tx started
later_than() { [ "$(since)" -gt "$1" ]; }
mkdir -p "$T/pub/1" "$T/pub/2" "$T/pub/3"
cp -a "$T/src/before" "$T/pub/1/"
cp -a "$T/src/lost" "$T/pub/2/"
cp -a "$T/src/after" "$T/pub/3/"
publish "$T/pub/1" "$T/tx/outbox"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 || fail "the warm-up file was not delivered"
[ "$(since)" -lt 1800 ] || fail "warm-up took too long: the blackout starts at 2 s"

wait_for 5 later_than 3000
log "blackout in progress ($(since) ms): sending lost/small.bin"
publish "$T/pub/2" "$T/tx/outbox"
wait_for 5 audit_at_least "$T/tx/audit.jsonl" file_sent 2 || fail "diode-tx did not send lost/small.bin"
[ "$(since)" -lt 5000 ] || fail "lost/small.bin was sent too late ($(since) ms): not inside the blackout"
id=$(python3 -c '
import json, sys
print([e for e in map(json.loads, open(sys.argv[1], encoding="utf-8"))
       if e["event"] == "file_sent" and e["path"] == "lost/small.bin"][0]["id"])' "$T/tx/audit.jsonl")
log "lost/small.bin was transfer $id"

# The link comes back at 7 s: reported within a few seconds (beacons every 1 s).
wait_for 12 audit_at_least "$T/rx/audit.jsonl" file_failed 1 "id=$id" ||
	fail "transfer $id was never reported; rx audit: $(grep -E 'file_|link_' "$T/rx/audit.jsonl")"
reported_ms=$(since)
log "transfer $id reported failed at $reported_ms ms"
[ "$reported_ms" -lt 13000 ] || fail "reported $((reported_ms - 7000)) ms after the blackout ended"
python3 - "$T/rx/audit.jsonl" "$id" <<'PY' || fail "file_failed record wrong"
import json, sys
e = [e for e in map(json.loads, open(sys.argv[1], encoding="utf-8"))
     if e["event"] == "file_failed" and e.get("id") == sys.argv[2]][0]
if "path" in e and e["path"] != "lost/small.bin":
    sys.exit(f"wrong path: {e}")
print(f"reported {'by path' if 'path' in e else 'by id only'}: {e.get('reason')}")
PY
publish "$T/pub/3" "$T/tx/outbox"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 "path=after/later.bin" ||
	fail "the file sent after the blackout was not delivered"
[ "$(audit_count "$T/rx/audit.jsonl" link_down)" -ge 1 ] || fail "no link_down during a 5 s blackout"
[ "$(audit_count "$T/rx/audit.jsonl" link_up)" -ge 2 ] || fail "no link_up after the blackout"
status_lists_it() {
	"$BIN/diode-rx" -c "$T/rx/conf" status > "$T/status.txt" || true
	grep -q "$id" "$T/status.txt"
}
wait_for 5 status_lists_it || fail "diode-rx status does not list the failure: $(cat "$T/status.txt")"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
[ "$(linksim_stat sim dropped_blackout)" -gt 0 ] || fail "linksim dropped nothing in the blackout"
mkdir -p "$T/expect"
cp -a "$T/src/before" "$T/src/after" "$T/expect/"
compare_trees "$T/expect" "$T/rx/inbox" || fail "inbox differs"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 1 ] || fail "expected exactly one file_failed"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
