#!/usr/bin/env bash
# [link] listen with two addresses: one diode-rx, one socket each, one receiver.
# diode-tx spreads its datagrams over two destinations, each through its own
# linksim into one of diode-rx's ports, so a file is whole only when what
# arrives on both sockets is reassembled together: every file must arrive
# byte-identical, exactly once, and both paths must have carried data.
# Also: a bad address in the list, or too many, is refused by name.
. "$(dirname "$0")/lib.sh"

p_rx1=$(free_udp_port)
p_rx2=$(free_udp_port)
p_sim1=$(free_udp_port)
p_sim2=$(free_udp_port)
gen_keys tx
gen_keys rx

# Configuration errors name the key and the address.
make_rx bad "$p_rx1" rx tx "link.listen=127.0.0.1:$p_rx1, 127.0.0.1:nope"
if "$BIN/diode-rx" -n -c "$T/bad/conf" 2>"$T/bad.err"; then
	fail "diode-rx accepted a listen list with a bad address"
fi
grep -q "listen.*'127.0.0.1:nope'" "$T/bad.err" ||
	fail "the error does not name the bad address: $(cat "$T/bad.err")"
many=$(python3 -c "print(', '.join('127.0.0.1:%d' % (40000 + i) for i in range(9)))")
make_rx bad "$p_rx1" rx tx "link.listen=$many"
if "$BIN/diode-rx" -n -c "$T/bad/conf" 2>"$T/bad.err"; then
	fail "diode-rx accepted 9 listen addresses"
fi
grep -q "at most 8 addresses" "$T/bad.err" || fail "unexpected error: $(cat "$T/bad.err")"

make_rx rx "$p_rx1" rx tx "link.listen=127.0.0.1:$p_rx1, 127.0.0.1:$p_rx2"
make_tx tx "$p_sim1" tx rx "link.destination=127.0.0.1:$p_sim1, 127.0.0.1:$p_sim2" \
	"link.rate=200M"
make_mixed_files "$T/src" 40 $((1024 * 1024)) 7
n=$(find "$T/src" -type f | wc -l)

start_rx rx
grep -q "listening on 127.0.0.1:$p_rx1, 127.0.0.1:$p_rx2" "$T/rx/stderr.log" ||
	fail "diode-rx does not say it listens on both addresses"
start_linksim sim1 "$p_sim1" "$p_rx1"
start_linksim sim2 "$p_sim2" "$p_rx2"
start_tx tx
publish "$T/src" "$T/tx/outbox"
log "$n files published over two paths"

delivered() { [ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" -ge "$n" ]; }
wait_for 40 delivered ||
	fail "only $(audit_count "$T/rx/audit.jsonl" file_delivered) of $n files delivered"
sleep 1 # a late duplicate would show now
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = "$n" ] || fail "more than $n deliveries"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "files reported failed"

stop_daemon tx || fail "diode-tx exited with status $?"
f1=$(linksim_stat sim1 forwarded)
f2=$(linksim_stat sim2 forwarded)
log "path 1 carried $f1 datagrams, path 2 $f2"
# Data alternates between the paths in runs: each carried a good share.
[ "$f1" -gt 100 ] && [ "$f2" -gt 100 ] || fail "one path carried (almost) nothing: $f1 / $f2"
stop_daemon sim1 || fail "linksim 1 exited with status $?"
stop_daemon sim2 || fail "linksim 2 exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok: $n files through two listen sockets"
