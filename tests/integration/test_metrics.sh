#!/usr/bin/env bash
# [log] metrics: both daemons write their counters in the Prometheus text
# format, replaced atomically every metrics_interval and at stop.
#   a metrics directory that does not exist -> -n fails, naming it
#   two files and 20 records through the pair -> both files valid (strict
#       parser tests/tools/promcheck, and `promtool check metrics` when
#       installed), mode 0644, the counters right: tx files sent 2, rx files
#       delivered 2, records 20 on both sides, link up, no rejection
#   diode-tx restarted (a new session: rx resets its session counters)
#       -> rx totals do not go down; one more file makes files delivered 3
#   diode-rx stopped -> its last write is still valid and complete
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

PROMCHECK=$ROOT/tests/tools/promcheck
p_rx=$(free_udp_port)
p_in=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/prom" "$T/sink"
make_rx rx "$p_rx" rx tx "log.metrics=$T/prom/diode-rx.prom" "log.metrics_interval=1s" \
	"channel.hist.sink=dir:$T/sink" "link.timeout=2s"
make_tx tx "$p_rx" tx rx "log.metrics=$T/prom/diode-tx.prom" "log.metrics_interval=1s" \
	"link.rate=50M" "channel.hist.listen=tcp://127.0.0.1:$p_in"

# A directory that does not exist is refused at start, by name.
cp "$T/rx/conf" "$T/bad.conf"
sed -i "s|^metrics = .*|metrics = $T/nowhere/diode-rx.prom|" "$T/bad.conf"
if "$BIN/diode-rx" -c "$T/bad.conf" -n > "$T/bad.out" 2>&1; then
	fail "diode-rx -n accepted a metrics file in a missing directory"
fi
grep -q "\[log\] metrics: .*$T/nowhere.*No such file or directory" "$T/bad.out" ||
	fail "missing metrics directory: unclear message: $(cat "$T/bad.out")"
log "a missing metrics directory is refused: $(grep '\[log\] metrics' "$T/bad.out")"

# get FILE SERIES: the value of one series ("" when absent or the file invalid).
get() { "$PROMCHECK" --get "$2" "$1" 2>/dev/null || true; }
# is FILE SERIES VALUE
is() { [ "$(get "$1" "$2")" = "$3" ]; }
valid() {
	"$PROMCHECK" "$1" || return 1
	if command -v promtool > /dev/null; then
		promtool check metrics < "$1" || return 1
	fi
}

start_rx rx
start_tx tx
RX=$T/prom/diode-rx.prom
TX=$T/prom/diode-tx.prom
wait_for 5 test -s "$RX" || fail "diode-rx wrote no metrics file"
wait_for 5 test -s "$TX" || fail "diode-tx wrote no metrics file"
[ "$(stat -c %a "$RX")" = 644 ] && [ "$(stat -c %a "$TX")" = 644 ] ||
	fail "metrics files not mode 0644: $(stat -c '%n %a' "$RX" "$TX")"

mkdir -p "$T/src"
random_file "$T/src/a.bin" 300000
random_file "$T/src/b.bin" 5000
publish "$T/src" "$T/tx/outbox"
"$SIM" send "tcp://127.0.0.1:$p_in" --count 20 --rate 1000 --quiet 2> "$T/sim.log" ||
	fail "sim-historian send failed: $(cat "$T/sim.log")"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 2 || fail "files not delivered"
wait_for 10 is "$RX" diode_rx_files_delivered_total 2 ||
	fail "rx metrics: files delivered $(get "$RX" diode_rx_files_delivered_total), want 2"
wait_for 10 is "$TX" diode_tx_files_sent_total 2 ||
	fail "tx metrics: files sent $(get "$TX" diode_tx_files_sent_total), want 2"
wait_for 10 is "$RX" 'diode_rx_channel_records_delivered_total{channel="hist"}' 20 ||
	fail "rx metrics: records delivered $(get "$RX" 'diode_rx_channel_records_delivered_total{channel="hist"}'), want 20"
wait_for 10 is "$TX" 'diode_tx_channel_records_sent_total{channel="hist"}' 20 ||
	fail "tx metrics: records sent $(get "$TX" 'diode_tx_channel_records_sent_total{channel="hist"}'), want 20"
valid "$RX" || fail "diode-rx metrics file rejected: $(cat "$RX")"
valid "$TX" || fail "diode-tx metrics file rejected: $(cat "$TX")"
log "both files valid ($(command -v promtool > /dev/null && echo "promcheck and promtool" || echo "promcheck; promtool not installed"))"

for s in 'diode_tx_channel_records_total{channel="hist"} 20' \
	'diode_tx_channel_records_dropped_total{channel="hist",reason="overflow"} 0' \
	'diode_tx_files_abandoned_total 0' 'diode_tx_files_queued 0' \
	'diode_tx_rate_limit_bytes_per_second 6250000'; do
	is "$TX" "${s% *}" "${s##* }" || fail "tx metrics: want $s, got $(get "$TX" "${s% *}")"
done
for s in diode_rx_link_up\ 1 'diode_rx_files_failed_total 0' \
	'diode_rx_rejected_datagrams_total{reason="bad_tag"} 0' \
	'diode_rx_rejected_datagrams_total{reason="replay"} 0' \
	'diode_rx_fec_blocks_lost_total 0' 'diode_rx_channel_records_lost_total{channel="hist"} 0' \
	'diode_rx_channel_gaps_total{channel="hist"} 0' \
	'diode_rx_channel_sink_dropped_records_total{channel="hist"} 0'; do
	is "$RX" "${s% *}" "${s##* }" || fail "rx metrics: want $s, got $(get "$RX" "${s% *}")"
done
sent=$(get "$TX" diode_tx_sent_datagrams_total)
received=$(get "$RX" diode_rx_received_datagrams_total)
# (Each file is a snapshot of its own moment: no comparison between them.)
[ "$sent" -gt 0 ] && [ "$received" -gt 0 ] ||
	fail "datagrams: tx sent $sent, rx received $received"
[ "$(get "$RX" diode_rx_session)" = "$(get "$TX" diode_tx_session)" ] ||
	fail "session: rx $(get "$RX" diode_rx_session), tx $(get "$TX" diode_tx_session)"
log "values: 2 files sent and delivered, 20 records each side, $sent datagrams sent, $received received"

# A new sender session resets diode-rx's session counters, not its totals.
before=$(get "$RX" diode_rx_received_datagrams_total)
stop_daemon tx || fail "diode-tx exited with status $?"
start_tx tx
mkdir -p "$T/src2"
random_file "$T/src2/c.bin" 70000
publish "$T/src2" "$T/tx/outbox"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 3 || fail "third file not delivered"
wait_for 10 is "$RX" diode_rx_files_delivered_total 3 ||
	fail "rx metrics after a new session: files delivered $(get "$RX" diode_rx_files_delivered_total), want 3"
after=$(get "$RX" diode_rx_received_datagrams_total)
[ "$after" -gt "$before" ] || fail "rx datagrams received went from $before to $after across a new session"
is "$RX" 'diode_rx_channel_records_delivered_total{channel="hist"}' 20 ||
	fail "rx records delivered changed across a new session"
wait_for 10 is "$TX" diode_tx_files_sent_total 1 || fail "new diode-tx: files sent $(get "$TX" diode_tx_files_sent_total), want 1"
log "new session: rx totals kept (datagrams $before -> $after, files 3)"

stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
valid "$RX" || fail "diode-rx metrics file after stop rejected"
valid "$TX" || fail "diode-tx metrics file after stop rejected"
is "$RX" diode_rx_files_delivered_total 3 || fail "last rx write lacks the third file"
[ -z "$(find "$T/prom" -name '.*')" ] || fail "temporary files left: $(ls -a "$T/prom")"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
