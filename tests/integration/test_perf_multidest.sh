#!/usr/bin/env bash
# Sender scale-out and send paths: diode-tx with two destinations (one
# linksim per path, both forwarding to one diode-rx listening on two ports)
# and a sealing worker thread spreads file data over both and sends every
# control datagram to both; the files arrive exact. Then, after a restart with GSO turned off and small
# bursts (one datagram per message, the path used when the kernel refuses
# GSO), one destination still delivers exact files.
#
# The rate is modest on purpose: the two linksim processes are scheduled
# independently on a busy machine, and one path lagging the other by a large
# fraction of a second would hold more half-complete blocks than diode-rx's
# block pool (not what this test is about).
. "$(dirname "$0")/lib.sh"

rx_a=$(free_udp_port)
rx_b=$(free_udp_port)
while [ "$rx_b" = "$rx_a" ]; do rx_b=$(free_udp_port); done
sim_a=$(free_udp_port)
sim_b=$(free_udp_port)
while [ "$sim_b" = "$sim_a" ] || [ "$sim_b" = "$rx_a" ] || [ "$sim_b" = "$rx_b" ]; do
	sim_b=$(free_udp_port)
done
gen_keys tx
gen_keys rx
make_rx rx "$rx_a" rx tx "link.listen=127.0.0.1:$rx_a, 127.0.0.1:$rx_b"
make_tx tx "$sim_a" tx rx "link.destination=127.0.0.1:$sim_a, 127.0.0.1:$sim_b" \
	"link.rate=300M" "link.workers=1" "files.settle_ms=200"
start_linksim sim_a "$sim_a" "$rx_a"
start_linksim sim_b "$sim_b" "$rx_b"
start_rx rx
start_tx tx
grep -q "sending to 127.0.0.1:$sim_a, 127.0.0.1:$sim_b" "$T/tx/stderr.log" ||
	fail "diode-tx does not name both destinations at start"

src=$T/src
mkdir -p "$src/one"
make_mixed_files "$src/one" 20 $((6 * 1024 * 1024)) 7
random_file "$src/one/big-12MiB.bin" $((12 * 1024 * 1024))
n1=$(find "$src/one" -type f | wc -l)
log "two destinations: $n1 files"
publish "$src/one" "$T/tx/outbox"
wait_for 120 same_listing "$src/one" "$T/rx/inbox" ||
	fail "two destinations: $(find "$T/rx/inbox" -type f | wc -l) of $n1 files arrived"
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered "$n1" ||
	fail "two destinations: fewer than $n1 file_delivered records"
compare_trees "$src/one" "$T/rx/inbox" || fail "two destinations: inbox differs"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "two destinations: a file failed"

fa=$(linksim_stat sim_a forwarded)
fb=$(linksim_stat sim_b forwarded)
log "datagrams forwarded: path a $fa, path b $fb"
total=$((fa + fb))
[ "$total" -gt 10000 ] || fail "too few datagrams on the two paths ($fa + $fb)"
# Data round-robin per run: each path carries about half (control goes to both).
[ $((fa * 10)) -ge $((total * 4)) ] && [ $((fb * 10)) -ge $((total * 4)) ] ||
	fail "data not spread over both destinations: $fa and $fb datagrams"

# Beacons and announces go to every destination: with path b gone, control
# still crosses on path a while the sender is idle.
stop_daemon sim_b || true
sleep 2.5
grep -q '"event":"link_down"' "$T/rx/audit.jsonl" && fail "link_down with one path left"
beacons_a=$(linksim_stat sim_a forwarded)
[ "$beacons_a" -gt "$fa" ] || fail "nothing crossed path a while idle (beacons, announces)"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
grep -q "GSO refused" "$T/tx/stderr.log" && log "note: the kernel refused GSO here"

log "one destination, gso = no, burst = 8"
make_tx tx "$sim_a" tx rx "link.destination=127.0.0.1:$rx_a" "link.rate=400M" \
	"link.gso=no" "link.burst=8" "files.settle_ms=200"
start_tx tx
mkdir -p "$src/two"
make_mixed_files "$src/two" 12 $((4 * 1024 * 1024)) 11
n2=$(find "$src/two" -type f | wc -l)
mkdir -p "$T/tx/outbox/two"
publish "$src/two" "$T/tx/outbox/two"
wait_for 120 same_listing "$src/two" "$T/rx/inbox/two" ||
	fail "gso = no: $(find "$T/rx/inbox/two" -type f | wc -l) of $n2 files arrived"
compare_trees "$src/two" "$T/rx/inbox/two" || fail "gso = no: inbox differs"
wait_for 30 no_files "$T/tx/outbox" || fail "files left in the outbox"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
stop_daemon sim_a || true
audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a file failed"
no_sanitizer_reports "$T"/*/stderr.log || fail "sanitizer reports"
log "ok"
