#!/usr/bin/env bash
# The disk thread ([link] workers = 1 on diode-rx, whatever the CPU count)
# under heavy out-of-order block completion: a quarter of the datagrams held
# back behind 1500 later ones (more than an interleaved group), with a block
# pool of 64 (the disk thread keeps at most 8 blocks waiting for earlier
# ones), so blocks complete far ahead of the hash, more are waiting than the
# disk thread may keep in memory, and those are read back from the staging
# files to be hashed. Every file arrives byte-identical, exactly once,
# none fails; diode-rx's stop line shows both paths were taken.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
RX_WORKERS=1 make_rx rx "$p_rx" rx tx "files.block_pool=64"
make_tx tx "$p_sim" tx rx "link.rate=200M" "link.repeat=1"
make_mixed_files "$T/src" 36 $((6 * 1024 * 1024)) 21
for i in 1 2 3 4; do
	head -c $((8 * 1024 * 1024 - i * 4321)) /dev/urandom > "$T/src/big$i.bin"
done

start_rx rx
grep -q 'staging writes and SHA-256 on the disk thread' "$T/rx/stderr.log" ||
	fail "diode-rx did not start its disk thread with [link] workers = 1"
start_linksim sim "$p_sim" "$p_rx" --seed 21 --reorder 0.25 --reorder-delay 1500
start_tx tx
publish "$T/src" "$T/tx/outbox"
log "40 files published; 25 % of the datagrams reordered by 1500"

accounted() {
	[ $(($(audit_count "$T/rx/audit.jsonl" file_delivered) +
		$(audit_count "$T/rx/audit.jsonl" file_failed))) -ge 40 ]
}
wait_for 60 accounted ||
	fail "only $(audit_count "$T/rx/audit.jsonl" file_delivered) of 40 files delivered"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a file failed"
wait_for 10 no_files "$T/tx/outbox" || fail "files stayed in the outbox"
sleep 1 # anything delivered twice would show now
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 40 ] || fail "more than 40 deliveries"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
reordered=$(linksim_stat sim reordered)
stop_daemon rx || fail "diode-rx exited with status $?"
line=$(grep -o 'disk thread: .*' "$T/rx/stderr.log" | tail -n 1)
log "linksim: $reordered reordered; diode-rx $line"
[ "$reordered" -gt 1000 ] || fail "linksim reordered only $reordered datagrams"
held=$(sed -nE 's/.* ([0-9]+) hashed after waiting in memory.*/\1/p' <<<"$line")
back=$(sed -nE 's/.* ([0-9]+) read back from disk.*/\1/p' <<<"$line")
[ "${held:-0}" -gt 0 ] || fail "no block waited in memory for an earlier one: $line"
[ "${back:-0}" -gt 0 ] || fail "no block was read back from disk to be hashed: $line"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
