#!/usr/bin/env bash
# Stream channel over UDP (one datagram, one record) and a Unix socket on the
# same channel: 100 000 records from 4 UDP senders and 2 000 from a Unix
# socket client arrive complete, byte-exact and in each sender's order, with
# nothing lost on loopback. A second channel goes UDP in, udp: sink out.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
in_port=$(free_udp_port)
trap_in=$(free_udp_port)
trap_out=$(free_udp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink"
make_rx rx "$port" rx tx "channel.syslog.sink=dir:$T/sink" \
	"channel.traps.sink=udp://127.0.0.1:$trap_out"
make_tx tx "$port" tx rx \
	"channel.syslog.listen=udp://127.0.0.1:$in_port, unix:$T/tx/syslog.sock" \
	"channel.traps.listen=udp://127.0.0.1:$trap_in"
"$SIM" listen "udp://127.0.0.1:$trap_out" --out "$T/traps.got" --count 5000 --ready "$T/traps.ready" \
	2> "$T/traps.log" &
traps_pid=$!
EXTRA_PIDS+=("$traps_pid")
wait_for 10 test -e "$T/traps.ready" || fail "the udp: sink's destination did not start"
start_rx rx
start_tx tx

log "4 UDP senders: 100000 records of 100 bytes at 25000 records/s; a Unix socket client: 2000"
"$SIM" send "udp://127.0.0.1:$in_port" --clients 4 --count 100000 --rate 25000 --size 100 \
	--numbered --copy "$T/sent" 2> "$T/sim-udp.log" &
udp_pid=$!
EXTRA_PIDS+=("$udp_pid")
"$SIM" send "unix:$T/tx/syslog.sock" --client-base 4 --count 2000 --rate 1000 --numbered \
	--prefix SYSLOG --copy "$T/sent.4" 2> "$T/sim-unix.log"
wait "$udp_pid" || fail "the UDP senders failed"
"$SIM" send "udp://127.0.0.1:$trap_in" --count 5000 --rate 2000 --numbered --prefix TRAP \
	--copy "$T/traps.sent" 2> /dev/null
wait_for 30 _gone "$traps_pid" || fail "the udp: sink delivered $(wc -l < "$T/traps.got") of 5000 records"
cmp -s "$T/traps.sent" "$T/traps.got" || fail "the udp: sink's records differ from those sent"
cat "$T/sim-udp.log" "$T/sim-unix.log"

wait_for 60 sink_has "$T/sink" 102000 || fail "not every record arrived within 60 s ($(sink_count "$T/sink") of 102000)"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
log "checking the segments"
check_sink "$T/sink" "$T/sent" 5 || fail "the records delivered differ from those sent"
[ "$(audit_count "$T/rx/audit.jsonl" records_lost)" = 0 ] || fail "records reported lost on loopback"
[ "$(audit_count "$T/tx/audit.jsonl" records_dropped)" = 0 ] || fail "records dropped by diode-tx"
[ "$(audit_count "$T/tx/audit.jsonl" records_refused)" = 0 ] || fail "records refused by diode-tx"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
