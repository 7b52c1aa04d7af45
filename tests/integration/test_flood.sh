#!/usr/bin/env bash
# A flood does not stop a legitimate transfer. Once the legitimate session is
# up, tests/tools/flood sends for 10 s, as fast as loopback takes it, forged
# 144-byte announces (well-formed, naming the trusted sender's public key and
# the receiver's, with a garbage tag: each would cost X25519 work if it were
# not rate limited), forged sealed datagrams of the session's size (each
# costs an AEAD check) and random garbage. Meanwhile a 16 MiB file is sent.
# It must be delivered byte-identical while the flood still runs, diode-rx
# must stay up (and under its sandbox), report the rejected datagrams in
# auth_failures events, and log no sanitizer report.
. "$(dirname "$0")/lib.sh"

[ -x "$BIN/flood" ] || fail "$BIN/flood missing; run 'make all' first"
port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx
# 16 MiB at 40 Mb/s: about 4 s on the wire, well inside the flood.
make_tx tx "$port" tx rx "link.rate=40M"
src=$T/src
mkdir -p "$src" "$T/stage"
start_rx rx
start_tx tx
wait_for 10 audit_at_least "$T/rx/audit.jsonl" link_up 1 || fail "no link_up before the flood"
session=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "session_started":
        print(e["session"])' "$T/tx/audit.jsonl" | tail -n 1)

flood_seconds=10
"$BIN/flood" "$port" "$flood_seconds" "$T/keys/tx.pub" "$T/keys/rx.pub" "$session" \
	>"$T/flood.out" 2>&1 &
flood_pid=$!
EXTRA_PIDS+=("$flood_pid")
flood_start=$SECONDS
sleep 1
alive "$flood_pid" || fail "the flooder ended early: $(cat "$T/flood.out")"

name=historian-export.bin
random_file "$src/$name" $((16 * 1024 * 1024))
cp -- "$src/$name" "$T/stage/$name"
mv -- "$T/stage/$name" "$T/tx/outbox/$name"
log "16 MiB file queued $((SECONDS - flood_start)) s into the flood"
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 "path=$name" ||
	fail "the legitimate file was not delivered during the flood"
took=$((SECONDS - flood_start))
log "delivered $took s after the flood started"
alive "$flood_pid" || fail "the file was delivered only after the flood had ended ($took s)"
is_running rx || fail "diode-rx died during the flood"
wait "$flood_pid" || fail "the flooder failed: $(cat "$T/flood.out")"
log "$(cat "$T/flood.out")"
is_running rx || fail "diode-rx died during the flood"

compare_trees "$src" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a transfer failed"

# The rejections were counted, in a bounded number of records.
wait_for 15 audit_at_least "$T/rx/audit.jsonl" auth_failures 1 ||
	fail "no auth_failures event after the flood"
read -r records limited badtag malformed <<<"$(python3 -c 'import json,sys
n = lim = bad = mal = 0
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "auth_failures":
        n += 1
        lim += e.get("announce_rate_limited", 0)
        bad += e.get("bad_tag", 0)
        mal += e.get("malformed", 0)
print(n, lim, bad, mal)' "$T/rx/audit.jsonl")"
log "auth_failures: $records records, $limited announces rate limited, $badtag bad tags, $malformed malformed"
[ "$limited" -gt 1000 ] || fail "too few announces counted as rate limited ($limited)"
[ "$badtag" -gt 1000 ] || fail "too few bad tags counted ($badtag)"
[ "$records" -le $((flood_seconds / 10 + 4)) ] || fail "$records auth_failures records: not rate limited"

# A new file still goes through after the flood.
random_file "$src/after.csv" 4096
cp -- "$src/after.csv" "$T/stage/after.csv"
mv -- "$T/stage/after.csv" "$T/tx/outbox/after.csv"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 path=after.csv ||
	fail "a file sent after the flood was not delivered"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/rx/stderr.log" "$T/tx/stderr.log" || fail "sanitizer report"
log "OK"
