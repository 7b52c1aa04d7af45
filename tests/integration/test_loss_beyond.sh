#!/usr/bin/env bash
# Loss beyond repair: 40 % loss for 4 s (linksim --loss-window) while four
# files are on the wire. Each of them is reported as file_failed BY PATH in the
# receiver's audit (with missing_blocks) within a few seconds after the sender's
# last pass; nothing but complete, verified files ever shows in the inbox
# (watched every 20 ms); files sent after the window are delivered; both
# daemons keep running.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx "link.timeout=5s"
# 4 x 2 MiB at 20 Mb/s with 64+8: about 4 s on the wire, all four interleaved.
make_tx tx "$p_sim" tx rx "link.rate=20M" "link.fec_data=64" "link.fec_parity=8" \
	"link.interleave=8" "link.repeat=1"
mkdir -p "$T/src1/inflight" "$T/src2"
for i in 1 2 3 4; do
	random_file "$T/src1/inflight/f$i.bin" $((2 * 1024 * 1024 + i * 1000))
done
make_mixed_files "$T/src2/after" 10 $((1024 * 1024)) 9

start_rx rx
inbox_guard_start "$T/rx/inbox" "$T/src1" "$T/src2"
# The window counts from the first datagram linksim sees: diode-tx's first
# announce, right at its start.
start_linksim sim "$p_sim" "$p_rx" --seed 7 --loss 0.4 --loss-window 0.5:4.5
start_tx tx
t_start=$(date +%s%N)
publish "$T/src1" "$T/tx/outbox"
log "4 files in flight; 40 % loss from 0.5 to 4.5 s"

wait_for 20 audit_at_least "$T/tx/audit.jsonl" file_sent 4 || fail "diode-tx did not send the 4 files"
# Each one named as failed, by path, within the receiver's timeout after its
# last datagram left.
for i in 1 2 3 4; do
	wait_for 10 audit_at_least "$T/rx/audit.jsonl" file_failed 1 "path=inflight/f$i.bin" ||
		fail "inflight/f$i.bin was not reported as file_failed by path; rx audit:" \
			"$(grep -E 'file_(failed|delivered)' "$T/rx/audit.jsonl" || echo none)"
done
python3 - "$T/tx/audit.jsonl" "$T/rx/audit.jsonl" <<'PY' || fail "failure reports late or incomplete"
import json, sys
from datetime import datetime
def ts(e):
    return datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
tx = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
rx = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
sent = {e["path"]: e for e in tx if e["event"] == "file_sent"}
problems = []
for e in (e for e in rx if e["event"] == "file_failed"):
    s = sent.get(e.get("path"))
    if s is None:
        problems.append(f"file_failed for a path not sent: {e}")
        continue
    delay = ts(e) - ts(s)
    print(f"{e['path']}: reported {delay:.1f} s after its last datagram left: {e.get('reason')}"
          f" (missing_blocks {e.get('missing_blocks')})")
    if delay > 7:
        problems.append(f"{e['path']}: reported {delay:.1f} s after it was sent (timeout 5 s)")
    if not e.get("missing_blocks"):
        problems.append(f"{e['path']}: no missing_blocks in {e}")
    if e.get("id") != s.get("id"):
        problems.append(f"{e['path']}: id {e.get('id')} is not the sender's {s.get('id')}")
if problems:
    sys.exit("\n".join(problems))
PY
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 0 ] || fail "a file was delivered through 40 % loss?"

# Past the window: what is sent now arrives.
past_window() { [ $(($(date +%s%N) - t_start)) -gt 5500000000 ]; }
wait_for 10 past_window || fail "clock?"
publish "$T/src2" "$T/tx/outbox"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 10 ||
	fail "files sent after the loss window were not all delivered"
sleep 1
inbox_guard_stop
compare_trees "$T/src2" "$T/rx/inbox" || fail "inbox differs from the files sent after the window"
is_running tx || fail "diode-tx is not running any more"
is_running rx || fail "diode-rx is not running any more"
[ "$(linksim_stat sim dropped_loss)" -gt 1000 ] || fail "linksim dropped too little: no real loss window"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 4 ] || fail "expected exactly 4 file_failed records"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
