#!/usr/bin/env bash
# Files share the link fairly: a small export dropped into the outbox after a
# large bundle has started is sent in turn with it (round-robin, one
# interleaved group each, up to [files] max_active at once), so it is
# delivered long before the bundle completes, and both arrive intact.
. "$(dirname "$0")/lib.sh"

port=$(free_udp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/src"
make_rx rx "$port" rx tx
make_tx tx "$port" tx rx "link.rate=200M"
start_rx rx
start_tx tx

# 64 MiB take about 3.7 s at 200 Mb/s (with parity and headers).
random_file "$T/src/bundle.bin" $((64 * 1024 * 1024))
random_file "$T/src/export.csv" 4096
cp "$T/src/bundle.bin" "$T/tx/bundle.bin.tmp"
mv "$T/tx/bundle.bin.tmp" "$T/tx/outbox/bundle.bin"
wait_for 20 audit_at_least "$T/tx/audit.jsonl" file_queued 1 "path=bundle.bin" ||
	fail "the large file was not taken"
cp "$T/src/export.csv" "$T/tx/export.csv.tmp"
mv "$T/tx/export.csv.tmp" "$T/tx/outbox/export.csv"
log "a 64 MiB bundle is on its way; a 4 KiB export dropped in after it"
wait_for 60 audit_at_least "$T/rx/audit.jsonl" file_delivered 2 || fail "the files did not arrive"
python3 - "$T/rx/audit.jsonl" "$T/tx/audit.jsonl" <<'PY' || fail "the small file waited for the large one"
import json, sys
rx = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
tx = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
def order(events, name):
    return [e.get("path") for e in events if e["event"] == name]
delivered, sent = order(rx, "file_delivered"), order(tx, "file_sent")
queued = order(tx, "file_queued")
problems = []
if queued[:2] != ["bundle.bin", "export.csv"]:
    problems.append(f"taken in the order {queued}, expected the bundle first: the test proves nothing")
if delivered != ["export.csv", "bundle.bin"]:
    problems.append(f"delivered in the order {delivered}")
if sent != ["export.csv", "bundle.bin"]:
    problems.append(f"sent in the order {sent}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
ms = {e["path"]: e["ms"] for e in rx if e["event"] == "file_delivered"}
print(f"export.csv delivered before bundle.bin ({ms['export.csv']} ms vs {ms['bundle.bin']} ms)")
PY
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
compare_trees "$T/src" "$T/rx/inbox" || fail "the files differ"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
