#!/usr/bin/env bash
# diode-tx killed with SIGKILL in the middle of a file (repeat = 2, 1 % loss
# on the link) and restarted: the file stays in the outbox, the new session
# sends it again whole, it is delivered exactly once and byte-identical, and
# the receiver reports the first session's unfinished transfer as failed
# (by path, because the sender restarted). Nothing partial ever shows in the
# inbox.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
# 24 MiB at 50 Mb/s with 64+8: a pass takes about 4.7 s.
make_tx tx "$p_sim" tx rx "link.rate=50M" "link.fec_data=64" "link.fec_parity=8" \
	"link.interleave=8" "link.repeat=2" "link.repeat_gap=1s"
name="export 24MiB.bin"
mkdir -p "$T/src"
random_file "$T/src/$name" $((24 * 1024 * 1024))

start_rx rx
inbox_guard_start "$T/rx/inbox" "$T/src"
start_linksim sim "$p_sim" "$p_rx" --seed 41 --loss 0.01
start_tx tx
publish "$T/src" "$T/tx/outbox"
wait_for 10 audit_at_least "$T/tx/audit.jsonl" file_queued 1 || fail "diode-tx did not take the file"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" link_up 1 || fail "no link_up on the receiver"
sleep 1.5
[ "$(audit_count "$T/tx/audit.jsonl" file_sent)" = 0 ] || fail "the file was sent already"
log "killing diode-tx (-9) during the first pass"
kill9_daemon tx
[ -f "$T/tx/outbox/$name" ] || fail "the file left the outbox although it was not completely sent"
no_files "$T/tx/sent" || fail "something was moved to the sent directory"
sleep 0.5
log "restarting diode-tx"
start_tx tx
wait_for 40 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 ||
	fail "the file was not delivered after the restart"
wait_for 20 no_files "$T/tx/outbox" || fail "the file stayed in the outbox after it was sent"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" file_failed 1 ||
	fail "the first session's transfer was not reported failed"
sleep 2 # a second delivery (second pass) would show now
inbox_guard_stop
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent"
compare_trees "$T/src" "$T/tx/sent" || fail "the sent directory differs from what was sent"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"

[ "$(audit_count "$T/tx/audit.jsonl" session_started)" = 2 ] || fail "expected two tx sessions"
[ "$(audit_count "$T/tx/audit.jsonl" file_sent "path=$name")" = 1 ] || fail "expected one file_sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 1 ] || fail "expected exactly one delivery"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 1 ] || fail "expected exactly one file_failed"
python3 - "$T/tx/audit.jsonl" "$T/rx/audit.jsonl" "$T/src/$name" <<'PY' || fail "audit records do not match"
import hashlib, json, sys
tx = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
rx = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
digest = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
queued = [e for e in tx if e["event"] == "file_queued"]
sent = [e for e in tx if e["event"] == "file_sent"][0]
failed = [e for e in rx if e["event"] == "file_failed"][0]
delivered = [e for e in rx if e["event"] == "file_delivered"][0]
problems = []
if len(queued) != 2:
    problems.append(f"{len(queued)} file_queued records, expected 2 (one per session)")
if failed.get("id") != queued[0]["id"]:
    problems.append(f"file_failed id {failed.get('id')} is not the first transfer {queued[0]['id']}")
if failed.get("path") != queued[0]["path"]:
    problems.append(f"file_failed does not name the path: {failed}")
if "restart" not in failed.get("reason", ""):
    problems.append(f"file_failed reason does not say the sender restarted: {failed}")
if delivered["id"] != sent["id"] or sent["id"] != queued[1]["id"]:
    problems.append(f"ids: queued {queued[1]['id']}, sent {sent['id']}, delivered {delivered['id']}")
if delivered.get("sha256") != digest:
    problems.append(f"delivered sha256 {delivered.get('sha256')} is not the file's {digest}")
if problems:
    sys.exit("\n".join(problems))
print(f"first transfer {failed['id']} failed: {failed['reason']}; delivered as {delivered['id']}")
PY
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
