#!/usr/bin/env bash
# Forged datagrams inside a receive-offload run: UDP_GSO sends (which loopback
# hands to diode-rx's UDP_GRO socket as one buffer with its segment size) of
# forged full-size datagrams carrying the live session's header, a short tail,
# and runs of tiny segments. Each segment must be judged on its own: every
# forged one counted as a bad tag or malformed, nothing delivered from them,
# and the genuine files before and after arrive intact.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
make_tx tx "$p_rx" tx rx "link.rate=200M"
make_mixed_files "$T/src1" 10 $((512 * 1024)) 3
make_mixed_files "$T/src2/later" 10 $((512 * 1024)) 4

start_rx rx
start_tx tx
publish "$T/src1" "$T/tx/outbox"
delivered() { [ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" -ge "$1" ]; }
wait_for 30 delivered 10 || fail "the first 10 files were not delivered"
wait_for 5 test -s "$T/rx/state/status" || fail "no status file"
session=$(awk '$1 == "session" { print $2 }' "$T/rx/state/status")
[ -n "$session" ] || fail "no session in the status file"

# 5 runs of 10 forged 1472-byte datagrams (the session's size, epoch 0, fresh
# sequence numbers: they reach the tag check) and a 100-byte tail (wrong size),
# then 5 runs of 60 segments of 15 bytes (shorter than a header).
python3 - "$p_rx" "$session" <<'PY' || fail "could not send GSO runs (UDP_SEGMENT)"
import os, socket, struct, sys
port, session = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def run(seg, payload):
    s.setsockopt(socket.IPPROTO_UDP, 103, seg)  # UDP_SEGMENT
    s.sendto(payload, ("127.0.0.1", port))
for r in range(5):
    buf = b""
    for i in range(10):
        hdr = struct.pack(">BBHIQ", 1, 2, 0, session, (1 << 60) + r * 100 + i)
        buf += hdr + os.urandom(1472 - len(hdr))
    buf += struct.pack(">BBHIQ", 1, 2, 0, session, (1 << 60) + r * 100 + 99) + os.urandom(84)
    run(1472, buf)
for r in range(5):
    run(15, os.urandom(15 * 60))
PY

publish "$T/src2" "$T/tx/outbox"
wait_for 30 delivered 20 || fail "the files sent after the forged runs were not delivered"
is_running rx || fail "diode-rx died"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
bad=$(awk '$1 == "rejected_bad_tag" { print $2 }' "$T/rx/state/status")
malformed=$(awk '$1 == "rejected_malformed" { print $2 }' "$T/rx/state/status")
log "rejected: $bad bad tag, $malformed malformed"
[ "$bad" = 50 ] || fail "expected 50 forged datagrams with a bad tag, counted $bad"
[ "$malformed" = 305 ] || fail "expected 305 malformed segments (5 tails + 300 tiny), counted $malformed"
mkdir -p "$T/all"
cp -a "$T/src1/." "$T/src2/." "$T/all/"
compare_trees "$T/all" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 20 ] || fail "not exactly 20 deliveries"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok: forged segments inside GRO runs rejected one by one"
