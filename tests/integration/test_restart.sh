#!/usr/bin/env bash
# diode-tx killed (-9) in the middle of a file: the file stays in the outbox,
# the restarted sender sends it again, it is delivered exactly once and
# byte-identical, and the receiver reports the unfinished first transfer as
# failed because the sender restarted.
. "$(dirname "$0")/lib.sh"

port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx
# 32 MiB at 100 Mb/s takes about 3 s on the wire.
make_tx tx "$port" tx rx "link.rate=100M"
src=$T/src
mkdir -p "$src" "$T/stage"
name="payload 32MiB.bin"
random_file "$src/$name" $((32 * 1024 * 1024))

start_rx rx
start_tx tx
session1=$(audit_count "$T/tx/audit.jsonl" session_started) # just a sanity read
[ "$session1" = 1 ] || fail "expected one session_started in the tx audit"

cp -- "$src/$name" "$T/stage/$name"
mv -- "$T/stage/$name" "$T/tx/outbox/$name"
wait_for 10 audit_at_least "$T/tx/audit.jsonl" file_queued 1 "path=$name" ||
	fail "diode-tx did not start sending the file"
# Wait until the receiver has visibly started rebuilding it, then ~1 s more.
wait_for 10 audit_at_least "$T/rx/audit.jsonl" link_up 1 || fail "no link_up on the receiver"
sleep 1
[ "$(audit_count "$T/tx/audit.jsonl" file_sent)" = 0 ] ||
	fail "the file was completely sent within 1 s at 100 Mb/s; cannot test an interrupted transfer"
log "killing diode-tx (-9) mid-transfer"
kill9_daemon tx
[ -f "$T/tx/outbox/$name" ] || fail "the file left the outbox although it was not completely sent"
no_files "$T/tx/sent" || fail "something was moved to the sent directory"
[ "$(find "$T/rx/inbox/.diode-staging" -type f | wc -l)" -ge 1 ] ||
	fail "the receiver holds no staging file: the transfer had not started?"
no_files_outside_staging() {
	[ -z "$(find "$T/rx/inbox" -mindepth 1 -path "$T/rx/inbox/.diode-staging" -prune -o -print -quit)" ]
}
no_files_outside_staging || fail "something was delivered from an interrupted transfer"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 0 ] || fail "file_delivered before the sender finished"

sleep 0.5
log "restarting diode-tx"
start_tx tx
wait_for 45 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 || fail "the file was not delivered after the restart"
wait_for 10 no_files "$T/tx/outbox" || fail "the file stayed in the outbox after it was sent"
sleep 2 # a duplicate delivery would show up now
compare_trees "$src" "$T/rx/inbox" || fail "inbox differs from what was sent"
compare_trees "$src" "$T/tx/sent" || fail "the sent directory differs from what was sent"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"

audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
[ "$(audit_count "$T/tx/audit.jsonl" session_started)" = 2 ] || fail "expected two tx sessions"
[ "$(audit_count "$T/tx/audit.jsonl" file_queued "path=$name")" = 2 ] ||
	fail "expected the file queued twice (once per session)"
[ "$(audit_count "$T/tx/audit.jsonl" file_sent "path=$name")" = 1 ] || fail "expected exactly one file_sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered "path=$name")" = 1 ] ||
	fail "expected exactly one file_delivered"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 1 ] || fail "unexpected extra deliveries"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed "reason~restarted")" = 1 ] ||
	fail "expected one file_failed whose reason says the sender restarted; rx audit: $(grep file_failed "$T/rx/audit.jsonl" || echo none)"
# The failed record is the first session's transfer, the delivered one the second's.
python3 - "$T/tx/audit.jsonl" "$T/rx/audit.jsonl" "$src/$name" <<'PY' || fail "audit records do not match"
import hashlib, json, sys
tx = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
rx = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
digest = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
queued = [e for e in tx if e["event"] == "file_queued"]
sent = [e for e in tx if e["event"] == "file_sent"][0]
failed = [e for e in rx if e["event"] == "file_failed"][0]
delivered = [e for e in rx if e["event"] == "file_delivered"][0]
problems = []
if failed["id"] != queued[0]["id"]:
    problems.append(f"file_failed id {failed['id']} is not the first transfer {queued[0]['id']}")
if sent["id"] != queued[1]["id"] or delivered["id"] != sent["id"]:
    problems.append(f"ids: queued {queued[1]['id']}, sent {sent['id']}, delivered {delivered['id']}")
for k in ("path", "size", "sha256"):
    if sent.get(k) != delivered.get(k):
        problems.append(f"{k}: sent {sent.get(k)!r}, delivered {delivered.get(k)!r}")
if delivered.get("sha256") != digest:
    problems.append(f"delivered sha256 {delivered.get('sha256')} is not the file's {digest}")
if problems:
    sys.exit("\n".join(problems))
PY
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
