#!/usr/bin/env bash
# Receiver limits and collisions: a file over max_file_size is refused with an
# audit event and never delivered; a name clash keeps both files (name.1.ext)
# unless collision = overwrite, which replaces and says so in the audit.
. "$(dirname "$0")/lib.sh"

port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx "files.max_file_size=1M"
make_tx tx "$port" tx rx "link.rate=500M" "files.settle_ms=200"
mkdir -p "$T/stage" "$T/src"
start_rx rx
start_tx tx

log "a 2 MiB file against max_file_size = 1M"
random_file "$T/stage/too-big.bin" $((2 * 1024 * 1024))
mv "$T/stage/too-big.bin" "$T/tx/outbox/too-big.bin"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_rejected 1 ||
	fail "no file_rejected for a file over max_file_size"
grep -q 'max_file_size' "$T/rx/audit.jsonl" || fail "the rejection does not name max_file_size"
sleep 1
[ ! -e "$T/rx/inbox/too-big.bin" ] || fail "a file over max_file_size was delivered"

log "the same name twice: both kept"
printf 'first version\n' > "$T/stage/report.csv"
mv "$T/stage/report.csv" "$T/tx/outbox/report.csv"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 "path=report.csv" ||
	fail "report.csv (first) not delivered"
printf 'second version\n' > "$T/stage/report.csv"
mv "$T/stage/report.csv" "$T/tx/outbox/report.csv"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 2 "path=report.csv" ||
	fail "report.csv (second) not delivered"
[ "$(cat "$T/rx/inbox/report.csv")" = "first version" ] || fail "the first report.csv was overwritten"
[ "$(cat "$T/rx/inbox/report.1.csv")" = "second version" ] ||
	fail "the second report.csv was not kept as report.1.csv"
grep -q '"delivered_as":"report.1.csv"' "$T/rx/audit.jsonl" ||
	fail "the audit does not say the second copy was delivered as report.1.csv"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"

log "collision = overwrite replaces"
make_rx rx "$port" rx tx "files.max_file_size=1M" "files.collision=overwrite"
start_rx rx
start_tx tx
printf 'third version\n' > "$T/stage/report.csv"
mv "$T/stage/report.csv" "$T/tx/outbox/report.csv"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 3 "path=report.csv" ||
	fail "report.csv (third) not delivered"
[ "$(cat "$T/rx/inbox/report.csv")" = "third version" ] || fail "overwrite did not replace report.csv"
[ ! -e "$T/rx/inbox/report.2.csv" ] || fail "overwrite still made a copy"
grep -q '"event":"file_replaced"' "$T/rx/audit.jsonl" || fail "no file_replaced audit event"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
log "ok"
