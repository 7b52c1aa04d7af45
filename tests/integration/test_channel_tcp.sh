#!/usr/bin/env bash
# Stream channel over TCP: 100 000 records from 4 clients at once into a
# dir: sink. Every record must arrive exactly once, byte-identical, each
# client's records in the order it sent them; segments are renamed into place
# and their names sort in stream order; nothing is reported lost.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
in_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink"
make_rx rx "$port" rx tx "channel.hist.sink=dir:$T/sink" "channel.hist.segment_bytes=1M"
make_tx tx "$port" tx rx "channel.hist.listen=tcp://127.0.0.1:$in_port"
start_rx rx
start_tx tx

log "4 clients send 100000 records (100 bytes each) as fast as they can"
"$SIM" send "tcp://127.0.0.1:$in_port" --clients 4 --count 100000 --rate 0 --size 100 \
	--numbered --copy "$T/sent" 2> "$T/sim.log"
cat "$T/sim.log"

# Segments are finished by size (1M here) and by age (60 s by default):
# stopping diode-rx finishes the last one.
wait_for 60 sink_has "$T/sink" 100000 || fail "not every record arrived within 60 s"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
ls -a "$T/sink" | grep -q '\.part$' && fail "a segment is left unfinished after the stop"
log "checking the segments"
check_sink "$T/sink" "$T/sent" 4 || fail "the records delivered differ from those sent"
[ "$(audit_count "$T/rx/audit.jsonl" records_lost)" = 0 ] || fail "records reported lost on loopback"
[ "$(audit_count "$T/tx/audit.jsonl" records_dropped)" = 0 ] || fail "records dropped by diode-tx"
audit_at_least "$T/rx/audit.jsonl" segment_finished 2 || fail "no segment_finished events"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
