#!/usr/bin/env bash
# A flood does not stop a legitimate transfer, nor a new legitimate session.
# Once the legitimate session is up, tests/tools/flood sends, as fast as
# loopback takes it, forged 160-byte announces (well-formed, naming the
# trusted sender's public key and the receiver's, with a garbage tag and a
# garbage static tag: without the static tag each would cost X25519 work or
# take a token of announce_rate), forged sealed datagrams of the session's
# size (each costs an AEAD check) and random garbage. Meanwhile a 16 MiB file
# is sent; then diode-tx is restarted (a new session, whose announces need a
# rate-limit token) and sends another file, and once that session has switched
# to a new key epoch (rekey = 10 s; the epoch's announces need a token too)
# a third. All must be delivered byte-identical while the flood still runs
# (it is stopped once they are);
# no forged announce may get as far as the rate limit; diode-rx must stay up
# (and under its sandbox), report the rejected datagrams in auth_failures
# events, and log no sanitizer report.
. "$(dirname "$0")/lib.sh"

[ -x "$BIN/flood" ] || fail "$BIN/flood missing; run 'make all' first"
port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx
# 16 MiB at 40 Mb/s: about 4 s on the wire, well inside the flood. The
# flooder takes one of the machine's cores and diode-rx's socket queue, so
# diode-rx drops legitimate datagrams with the forged ones: 3-6 % on a quiet
# 2-core machine, up to ~30 % when other jobs share it - beyond what FEC
# 64+16 repairs in one pass. The sender therefore runs two carousel passes
# (repeat = 2), as an operator facing a hostile or lossy link would; the
# receiver merges them and delivers as soon as the file is complete.
make_tx tx "$port" tx rx "link.rate=40M" "link.rekey=10s" "link.repeat=2"
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

# deliver_during_flood NAME BYTES WHAT: a random file of BYTES queued now
# must be delivered while the flooder still runs (WHAT names it in messages).
deliver_during_flood() {
	local name=$1 bytes=$2 what=$3 took
	random_file "$src/$name" "$bytes"
	cp -- "$src/$name" "$T/stage/$name"
	mv -- "$T/stage/$name" "$T/tx/outbox/$name"
	log "$what queued $((SECONDS - flood_start)) s into the flood"
	wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 "path=$name" ||
		fail "$what was not delivered during the flood"
	took=$((SECONDS - flood_start))
	log "$what delivered $took s after the flood started"
	alive "$flood_pid" || fail "$what was delivered only after the flood had ended ($took s)"
	is_running rx || fail "diode-rx died during the flood"
}

flood_seconds=90 # at most: it is stopped once the three files are delivered
"$BIN/flood" "$port" "$flood_seconds" "$T/keys/tx.pub" "$T/keys/rx.pub" "$session" \
	>"$T/flood.out" 2>&1 &
flood_pid=$!
EXTRA_PIDS+=("$flood_pid")
flood_start=$SECONDS
sleep 1
alive "$flood_pid" || fail "the flooder ended early: $(cat "$T/flood.out")"

deliver_during_flood historian-export.bin $((16 * 1024 * 1024)) "the legitimate 16 MiB file"

# A new session during the flood: forged announces must not crowd out its
# announces (they fail the static tag before taking a rate-limit token).
# (Once its carousel is over: a file still in the outbox would be sent again
# by the new session and delivered twice.)
wait_for 30 no_files "$T/tx/outbox" || fail "the 16 MiB file's passes did not end"
alive "$flood_pid" || fail "the flood ended before diode-tx could be restarted"
log "restarting diode-tx during the flood"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
tx_lines=$(wc -l <"$T/tx/stderr.log")
start_tx tx
wait_for 30 audit_at_least "$T/rx/audit.jsonl" session_started 2 ||
	fail "diode-rx did not accept the restarted diode-tx's new session during the flood"
log "new session accepted $((SECONDS - flood_start)) s after the flood started"
deliver_during_flood restarted.bin $((2 * 1024 * 1024)) "the new session's file"

# A new key epoch during the flood: data sealed with it must still open.
switched() {
	tail -n "+$((tx_lines + 1))" "$T/tx/stderr.log" | grep 'now sealing with key epoch 1' >/dev/null
}
wait_for 40 switched || fail "the restarted diode-tx did not switch to key epoch 1"
log "new session switched to key epoch 1 $((SECONDS - flood_start)) s after the flood started"
deliver_during_flood rekeyed.bin $((1024 * 1024)) "a file sealed with key epoch 1"
kill -TERM "$flood_pid"
wait "$flood_pid" || fail "the flooder failed: $(cat "$T/flood.out")"
flood_took=$((SECONDS - flood_start))
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
# Forged announces fail the static tag: none reaches the rate limit.
[ "$limited" = 0 ] || fail "$limited announces counted as rate limited: forgeries passed the static tag?"
[ "$badtag" -gt 1000 ] || fail "too few bad tags counted ($badtag)"
[ "$records" -le $((flood_took / 10 + 5)) ] || fail "$records auth_failures records: not rate limited"

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
