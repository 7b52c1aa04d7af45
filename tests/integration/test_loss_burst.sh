#!/usr/bin/env bash
# Burst loss (Gilbert-Elliott, mean burst 50 datagrams, 2 % average): with
# fec 64+16 and interleave 32 every file arrives, because a burst of B
# datagrams costs each of the 32 blocks of a group only about B/32 fragments
# (16 parity per block: bursts up to ~500 datagrams are survivable). The same
# files through the same link with interleave 1 lose files (a 50-datagram
# burst inside one block is beyond its 16 parity): interleaving is what saves
# them. The files are whole groups (2 x 32 blocks of 64 x 1408 bytes), since
# a file shorter than a group is interleaved over fewer blocks (small files
# on a bursty link need repeat too; see docs/OPERATIONS.md).
. "$(dirname "$0")/lib.sh"

group=$((32 * 64 * 1408))
p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
tx_conf() {
	make_tx tx "$p_sim" tx rx "link.rate=400M" "link.fec_data=64" "link.fec_parity=16" \
		"link.interleave=$1" "link.repeat=1"
}
mkdir -p "$T/src/interleaved" "$T/src/flat"
for i in $(seq 1 10); do
	random_file "$T/src/interleaved/g$i.bin" $((2 * group))
	cp "$T/src/interleaved/g$i.bin" "$T/src/flat/g$i.bin"
done

start_rx rx
start_linksim sim "$p_sim" "$p_rx" --seed 11 --burst-loss 0.02 --burst-len 50

log "interleave 32: 10 files of $((2 * group)) bytes"
tx_conf 32
start_tx tx
mkdir -p "$T/pub1"
cp -a "$T/src/interleaved" "$T/pub1/"
publish "$T/pub1" "$T/tx/outbox"
wait_for 40 audit_at_least "$T/tx/audit.jsonl" file_sent 10 || fail "diode-tx did not send the 10 files"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" file_delivered 10 ||
	fail "interleave 32: only $(audit_count "$T/rx/audit.jsonl" file_delivered) of 10 files" \
		"delivered through mean-50 bursts"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "files failed with interleave 32"
bursts_dropped=$(linksim_stat sim dropped_burst)
recovered=$(awk '$1 == "blocks_recovered" { print $2 }' "$T/rx/state/status")
log "interleave 32: all delivered; $bursts_dropped datagrams dropped in bursts so far," \
	"$recovered blocks repaired"
[ "$bursts_dropped" -gt 200 ] || fail "linksim dropped only $bursts_dropped datagrams: no real bursts"
stop_daemon tx || fail "diode-tx exited with status $?"

log "control, interleave 1: the same files through the same link"
tx_conf 1
start_tx tx
mkdir -p "$T/pub2"
cp -a "$T/src/flat" "$T/pub2/"
publish "$T/pub2" "$T/tx/outbox"
wait_for 40 audit_at_least "$T/tx/audit.jsonl" file_sent 20 || fail "diode-tx did not send the control files"
control_done() {
	[ $(($(audit_count "$T/rx/audit.jsonl" file_delivered path~flat/) +
		$(audit_count "$T/rx/audit.jsonl" file_failed path~flat/))) -ge 10 ]
}
wait_for 15 control_done || fail "the control files were neither all delivered nor all reported"
lost_flat=$(audit_count "$T/rx/audit.jsonl" file_failed path~flat/)
log "interleave 1: $lost_flat of 10 files failed (reported by path)"
[ "$lost_flat" -ge 1 ] ||
	fail "without interleaving no file failed: the bursts did not test interleaving"

stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
# Everything in the inbox is verified: the interleaved set whole, and of the
# control set only what was delivered, nothing else.
mkdir -p "$T/expect/interleaved" "$T/expect/flat"
cp "$T/src/interleaved/"* "$T/expect/interleaved/"
for p in $(audit_paths "$T/rx/audit.jsonl" file_delivered | grep '^flat/'); do
	cp "$T/src/$p" "$T/expect/$p"
done
compare_trees "$T/expect" "$T/rx/inbox" || fail "inbox differs from what was delivered"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
