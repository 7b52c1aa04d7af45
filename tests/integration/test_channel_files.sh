#!/usr/bin/env bash
# Records and files together: while a large file crosses at the full rate,
# records of a stream channel still arrive, all of them, before the file is
# done (they go before file data); a small file dropped in meanwhile arrives
# too, and every file arrives intact.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
in_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink" "$T/src"
make_rx rx "$port" rx tx "channel.hist.sink=dir:$T/sink"
make_tx tx "$port" tx rx "link.rate=200M" "channel.hist.listen=tcp://127.0.0.1:$in_port"
start_rx rx
start_tx tx

random_file "$T/src/patch-bundle.bin" $((192 * 1024 * 1024))
random_file "$T/src/small-report.csv" 200000
cp "$T/src/patch-bundle.bin" "$T/tx/patch-bundle.bin.tmp"
mv "$T/tx/patch-bundle.bin.tmp" "$T/tx/outbox/patch-bundle.bin"
wait_for 20 audit_at_least "$T/tx/audit.jsonl" file_queued 1 || fail "the large file was not taken"
log "the large file is on its way; 2000 records at 1000/s and a small file meanwhile"
cp "$T/src/small-report.csv" "$T/tx/small-report.csv.tmp"
mv "$T/tx/small-report.csv.tmp" "$T/tx/outbox/small-report.csv"
"$SIM" send "tcp://127.0.0.1:$in_port" --count 2000 --rate 1000 --numbered \
	--copy "$T/sent" 2> "$T/sim.log"
wait_for 30 sink_contains "$T/sink" "$(tail -n 1 "$T/sent")" || fail "the records did not arrive"
if [ "$(audit_count "$T/rx/audit.jsonl" file_delivered path=patch-bundle.bin)" != 0 ]; then
	fail "the large file was done before the records arrived: the test proves nothing (make it larger)"
fi
log "all records arrived while the large file was still crossing"
wait_for 120 audit_at_least "$T/rx/audit.jsonl" file_delivered 2 || fail "the files did not arrive"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
compare_trees "$T/src" "$T/rx/inbox" || fail "the files differ"
check_sink "$T/sink" "$T/sent" 1 || fail "the records differ"
[ "$(audit_count "$T/rx/audit.jsonl" records_lost)" = 0 ] || fail "records reported lost"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
