#!/usr/bin/env bash
# scripts/reconcile on the audit logs of real runs. Between diode-tx and
# diode-rx a small forwarder drops every datagram while a flag file exists:
# two files sent during the outage are lost, the others delivered.
# reconcile names exactly those two (exit 1); the logs of the clean first
# part of the run reconcile to exit 0; a forged delivery with no matching
# send raises the alarm (exit 3), as does a delivered digest that differs
# from the sent one; a file the receiver never mentions is "never heard of"
# (exit 1) or "pending" within --grace (exit 0); a malformed line is
# reported as FILE:LINE and skipped; rotated logs are read with --tx/--rx.
. "$(dirname "$0")/lib.sh"

RECONCILE=$ROOT/scripts/reconcile
p_rx=$(free_udp_port)
p_fw=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx "link.timeout=3s"
make_tx tx "$p_fw" tx rx "link.rate=20M" "link.repeat=1"
mkdir -p "$T/pub1/ok1" "$T/pub2/lost" "$T/pub3/ok2"
for i in 1 2 3; do random_file "$T/pub1/ok1/f$i.bin" $((20000 * i)); done
random_file "$T/pub2/lost/a.bin" 70000
random_file "$T/pub2/lost/b.bin" 3000
for i in 1 2; do random_file "$T/pub3/ok2/g$i.bin" $((30000 * i)); done

# The forwarder: 127.0.0.1:p_fw -> 127.0.0.1:p_rx, dropping while $T/drop exists.
python3 - "$p_fw" "$p_rx" "$T/drop" "$T/fw.count" <<'PY' &
import os, socket, sys, time
listen, forward, flag, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", listen))
open(count + ".ready", "w").close()
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dropped = forwarded = 0
while True:
    data = s.recv(65536)
    if os.path.exists(flag):
        dropped += 1
        if dropped % 50 == 1:
            open(count, "w").write(f"{dropped}\n")
        continue
    out.sendto(data, ("127.0.0.1", forward))
    forwarded += 1
PY
EXTRA_PIDS+=("$!")
wait_for 10 test -e "$T/fw.count.ready" || fail "the forwarder did not start"

start_rx rx
start_tx tx
publish "$T/pub1" "$T/tx/outbox"
wait_for 15 audit_at_least "$T/rx/audit.jsonl" file_delivered 3 || fail "ok1 files not delivered"
# The logs of a clean run, as they are now.
cp "$T/tx/audit.jsonl" "$T/clean-tx.jsonl"
cp "$T/rx/audit.jsonl" "$T/clean-rx.jsonl"

touch "$T/drop"
publish "$T/pub2" "$T/tx/outbox"
wait_for 15 audit_at_least "$T/tx/audit.jsonl" file_sent 5 || fail "lost/* not sent"
sleep 0.5 # let the forwarder drop what is still queued to it
[ -s "$T/fw.count" ] || fail "the forwarder dropped nothing"
rm -f "$T/drop"
publish "$T/pub3" "$T/tx/outbox"
wait_for 15 audit_at_least "$T/rx/audit.jsonl" file_delivered 5 || fail "ok2 files not delivered"
wait_for 15 audit_at_least "$T/rx/audit.jsonl" file_failed 2 ||
	fail "diode-rx did not report the two lost files: $(grep file_ "$T/rx/audit.jsonl")"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
log "run done: 5 delivered, 2 lost"

# reconcile ARGS... > $T/out, status in $rc
run() { rc=0; "$RECONCILE" "$@" > "$T/out" 2> "$T/err" || rc=$?; }

# 1. The lost files, exactly, exit 1.
run "$T/tx/audit.jsonl" "$T/rx/audit.jsonl"
[ "$rc" = 1 ] || fail "reconcile exited $rc, expected 1: $(cat "$T/out" "$T/err")"
[ "$(grep -c '^FAILED ' "$T/out")" = 2 ] || fail "expected 2 FAILED lines: $(cat "$T/out")"
grep -q '^FAILED  *lost/a.bin  size 70000  id [0-9]*-4  reason: ' "$T/out" || fail "lost/a.bin not named: $(cat "$T/out")"
grep -q '^FAILED  *lost/b.bin  size 3000  id [0-9]*-5  reason: ' "$T/out" || fail "lost/b.bin not named: $(cat "$T/out")"
grep -q 'sent 7: delivered 5, failed 2, never heard of 0, pending 0' "$T/out" || fail "summary: $(cat "$T/out")"
run --json "$T/tx/audit.jsonl" "$T/rx/audit.jsonl"
[ "$rc" = 1 ] || fail "reconcile --json exited $rc"
python3 - "$T/out" <<'PY' || fail "JSON report wrong: $(head -c 2000 "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["exit"] == 1, d["exit"]
assert sorted(f["path"] for f in d["failed"]) == ["lost/a.bin", "lost/b.bin"], d["failed"]
assert sorted(f["path"] for f in d["delivered"]) == ["ok1/f1.bin", "ok1/f2.bin", "ok1/f3.bin",
                                                    "ok2/g1.bin", "ok2/g2.bin"], d["delivered"]
assert all(f["reason"] for f in d["failed"])
for k in ("never_heard_of", "pending", "delivered_without_send", "mismatch", "malformed"):
    assert d[k] == [], (k, d[k])
assert d["counts"]["sent"] == 7
PY
log "lost files named exactly (exit 1, --json too)"

# 2. The clean part of the run: exit 0.
run "$T/clean-tx.jsonl" "$T/clean-rx.jsonl"
[ "$rc" = 0 ] || fail "clean run: reconcile exited $rc: $(cat "$T/out")"
grep -q 'sent 3: delivered 3, failed 0' "$T/out" || fail "clean summary: $(cat "$T/out")"

# 3. The receiver never heard of the lost files (its reports removed): never
# heard of once the grace is over (exit 1), pending within it (exit 0).
grep -v '"file_failed"' "$T/rx/audit.jsonl" > "$T/rx-silent.jsonl"
run --grace 0 "$T/tx/audit.jsonl" "$T/rx-silent.jsonl"
[ "$rc" = 1 ] || fail "never heard of: exit $rc"
[ "$(grep -c '^NEVER-HEARD-OF ' "$T/out")" = 2 ] || fail "expected 2 NEVER-HEARD-OF: $(cat "$T/out")"
run --grace 3600 "$T/tx/audit.jsonl" "$T/rx-silent.jsonl"
[ "$rc" = 0 ] || fail "pending: exit $rc: $(cat "$T/out")"
[ "$(grep -c '^PENDING ' "$T/out")" = 2 ] || fail "expected 2 PENDING: $(cat "$T/out")"
log "never heard of / pending"

# 4. A forged delivery (no send matches it): alarm, exit 3, named.
cp "$T/rx/audit.jsonl" "$T/rx-forged.jsonl"
sess=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["session"])' "$T/tx/audit.jsonl")
echo "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"program\":\"diode-rx\",\"event\":\"file_delivered\",\"id\":\"$sess-99\",\"session\":$sess,\"transfer\":99,\"path\":\"evil.bin\",\"size\":5,\"sha256\":\"00\"}" >> "$T/rx-forged.jsonl"
run "$T/tx/audit.jsonl" "$T/rx-forged.jsonl"
[ "$rc" = 3 ] || fail "forged delivery: exit $rc, expected 3: $(cat "$T/out")"
grep -q "^NO-SEND  *evil.bin  size 5  id $sess-99  (.*rx-forged.jsonl:[0-9]*)" "$T/out" || fail "forged delivery not named: $(cat "$T/out")"
# A delivered digest that differs from the sent one: alarm too.
python3 - "$T/clean-rx.jsonl" "$T/rx-digest.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
for i, l in enumerate(lines):
    e = json.loads(l)
    if e["event"] == "file_delivered":
        e["sha256"] = "ab" * 32
        lines[i] = json.dumps(e)
        break
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
run "$T/clean-tx.jsonl" "$T/rx-digest.jsonl"
[ "$rc" = 3 ] || fail "digest mismatch: exit $rc"
grep -q '^MISMATCH .*SHA-256 abab' "$T/out" || fail "mismatch not named: $(cat "$T/out")"
log "integrity alarms (exit 3)"

# 5. A malformed line: reported with FILE:LINE, skipped, the rest judged.
{ head -n 3 "$T/clean-rx.jsonl"; echo '{"ts": "2026-01-01T00:00:00.000Z", "event": "file_deliv'; tail -n +4 "$T/clean-rx.jsonl"; } > "$T/rx-bad.jsonl"
run "$T/clean-tx.jsonl" "$T/rx-bad.jsonl"
[ "$rc" = 0 ] || fail "malformed line: exit $rc: $(cat "$T/out" "$T/err")"
grep -q "rx-bad.jsonl:4: malformed line skipped: not JSON" "$T/err" || fail "malformed line not reported as FILE:LINE: $(cat "$T/err")"
grep -q "malformed lines skipped: 1" "$T/out" || fail "summary does not count it"

# 6. Rotated logs: the tx log cut in two (the first part gzipped), --tx/--rx.
n=$(wc -l < "$T/tx/audit.jsonl")
head -n $((n / 2)) "$T/tx/audit.jsonl" | gzip > "$T/tx.1.gz"
tail -n +$((n / 2 + 1)) "$T/tx/audit.jsonl" > "$T/tx.0"
run --tx "$T/tx.1.gz" "$T/tx.0" --rx "$T/rx/audit.jsonl"
[ "$rc" = 1 ] || fail "rotated logs: exit $rc"
[ "$(grep -c '^FAILED ' "$T/out")" = 2 ] || fail "rotated logs: $(cat "$T/out")"

# 7. Usage and read errors: exit 2.
run "$T/tx/audit.jsonl"
[ "$rc" = 2 ] || fail "one log only: exit $rc"
run "$T/tx/audit.jsonl" "$T/missing.jsonl"
[ "$rc" = 2 ] || fail "missing log: exit $rc"
grep -q "missing.jsonl" "$T/err" || fail "missing log not named: $(cat "$T/err")"
log "ok"
