#!/usr/bin/env bash
# 5 % independent loss (linksim between the daemons): 200 files of mixed sizes
# (0 .. 2 MiB, edge sizes included) all arrive byte-identical, exactly once,
# with the profile docs/OPERATIONS.md recommends for a 5 % link: fec_data 64,
# fec_parity 16, interleave 16, repeat 1. The receiver must have repaired
# blocks with FEC and counted the loss.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
make_tx tx "$p_sim" tx rx "link.rate=200M" \
	"link.fec_data=64" "link.fec_parity=16" "link.interleave=16" "link.repeat=1"
make_mixed_files "$T/src" 200 $((2 * 1024 * 1024)) 5
n=$(find "$T/src" -type f | wc -l)
[ "$n" = 200 ] || fail "expected 200 source files, made $n"

start_rx rx
start_linksim sim "$p_sim" "$p_rx" --seed 5 --loss 0.05
start_tx tx
publish "$T/src" "$T/tx/outbox"
log "200 files ($(du -sm "$T/src" | cut -f1) MiB) published; 5 % loss on the link"

# Every file delivered or reported (a failure is reported ~2 s after its last
# datagram), then none may have failed.
accounted() {
	[ $(($(audit_count "$T/rx/audit.jsonl" file_delivered) +
		$(audit_count "$T/rx/audit.jsonl" file_failed))) -ge 200 ]
}
wait_for 40 accounted ||
	fail "only $(audit_count "$T/rx/audit.jsonl" file_delivered) of 200 files delivered and" \
		"$(audit_count "$T/rx/audit.jsonl" file_failed) reported failed"
nfailed=$(audit_count "$T/rx/audit.jsonl" file_failed)
if [ "$nfailed" != 0 ]; then
	python3 - "$T/rx/audit.jsonl" <<'PY'
import json, sys
for e in map(json.loads, open(sys.argv[1], encoding="utf-8")):
    if e["event"] == "file_failed":
        print(f"  {e.get('path')} ({e.get('size')} bytes): {e.get('reason')}", file=sys.stderr)
PY
	fail "$nfailed of 200 files failed at 5 % loss with 64+16 interleave 16 (listed above)"
fi
wait_for 10 no_files "$T/tx/outbox" || fail "files stayed in the outbox"
sleep 1 # a late duplicate would show now
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 200 ] || fail "more than 200 deliveries"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "files reported failed at 5 % loss"

# The loss really happened, and the receiver saw and repaired it.
"$BIN/diode-rx" -c "$T/rx/conf" status > "$T/status.txt" || true
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
received=$(linksim_stat sim received)
dropped=$(linksim_stat sim dropped_loss)
log "linksim: $dropped of $received datagrams dropped"
python3 -c "import sys; r = $dropped / $received; sys.exit(0 if 0.035 < r < 0.065 else 1)" ||
	fail "linksim dropped $dropped of $received datagrams, not about 5 %"
lost=$(awk '$1 == "datagrams_lost" { print $2 }' "$T/rx/state/status")
recovered=$(awk '$1 == "blocks_recovered" { print $2 }' "$T/rx/state/status")
[ "${lost:-0}" -gt 0 ] || fail "the receiver counted no lost datagrams: $(cat "$T/rx/state/status")"
[ "${recovered:-0}" -gt 0 ] || fail "no block was repaired by FEC"
grep -q 'blocks repaired' "$T/status.txt" || fail "diode-rx status did not print the FEC line"
stop_daemon rx || fail "diode-rx exited with status $?"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok: 200 files through 5 % loss ($lost datagrams lost, $recovered blocks repaired)"
