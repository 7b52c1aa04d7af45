#!/usr/bin/env bash
# GSO refused by the kernel: diode-tx falls back to one datagram per message
# by itself, says so once, and delivers exact files. Both daemons run in a
# network namespace of their own whose loopback has an MTU (1400) below the
# datagram (1472 + 28 bytes of headers): the kernel refuses a GSO message
# whose segments do not fit the route (EINVAL) - as it does on a device
# without checksum offload (EIO) - while single datagrams are fragmented and
# cross. Needs root and ip netns; skipped otherwise.
. "$(dirname "$0")/lib.sh"

NS=ddgso-$$
if [ "$(id -u)" != 0 ] || ! ip netns add "$NS" 2>"$T/netns.err"; then
	echo "SKIP ($TEST_NAME): cannot create a network namespace ($(cat "$T/netns.err" 2>/dev/null || echo 'not root')); run as root"
	exit 0
fi
EXIT_HOOKS+=("ip netns del $NS 2>/dev/null")
ip netns exec "$NS" ip link set lo up mtu 1400 || fail "cannot set the namespace's loopback MTU"
RUN_IN="ip netns exec $NS"

port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx
make_tx tx "$port" tx rx "link.rate=200M" "files.settle_ms=200"
start_rx rx
start_tx tx

src=$T/src
mkdir -p "$src"
make_mixed_files "$src" 10 $((2 * 1024 * 1024)) 5
random_file "$src/big-8MiB.bin" $((8 * 1024 * 1024))
n=$(find "$src" -type f | wc -l)
publish "$src" "$T/tx/outbox"
wait_for 90 same_listing "$src" "$T/rx/inbox" ||
	fail "$(find "$T/rx/inbox" -type f | wc -l) of $n files arrived after GSO was refused"
compare_trees "$src" "$T/rx/inbox" || fail "inbox differs"
wait_for 30 no_files "$T/tx/outbox" || fail "files left in the outbox"

[ "$(grep -c 'UDP GSO refused by the kernel' "$T/tx/stderr.log")" = 1 ] ||
	fail "diode-tx did not report the refused GSO exactly once: $(grep -i gso "$T/tx/stderr.log")"
grep -q 'sending to the diode link fails' "$T/tx/stderr.log" &&
	fail "send errors logged besides the GSO fallback"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a file failed"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = "$n" ] || fail "not $n file_delivered records"
no_sanitizer_reports "$T"/*/stderr.log || fail "sanitizer reports"
log "ok"
