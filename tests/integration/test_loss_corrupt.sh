#!/usr/bin/env bash
# 1 % of the datagrams get 1-3 bits flipped, 1 % are truncated (linksim). Every
# one of them is refused (AEAD tag, or the length/format checks before it) and
# counted: the receiver's rejection totals (auth_failures audit records, the
# status file) match what linksim altered, and the files still arrive
# byte-identical through FEC (default profile 64+8), none twice.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
make_tx tx "$p_sim" tx rx "link.rate=200M" "link.fec_data=64" "link.fec_parity=8" \
	"link.interleave=8" "link.repeat=1"
# Files of 1 to 2.5 MiB: each spans more than one interleaved group, so every
# block is a full 64 + 8 one (what this test is about is the authentication;
# small files and FEC are test_loss_independent's business).
mkdir -p "$T/src"
for i in $(seq 1 16); do
	random_file "$T/src/c$i.bin" $((1024 * 1024 + i * 97 * 1024 + i))
done

start_rx rx
start_linksim sim "$p_sim" "$p_rx" --seed 17 --corrupt 0.01 --truncate 0.01
start_tx tx
publish "$T/src" "$T/tx/outbox"
log "16 files published; 1 % corrupted, 1 % truncated"

wait_for 40 audit_at_least "$T/rx/audit.jsonl" file_delivered 16 ||
	fail "only $(audit_count "$T/rx/audit.jsonl" file_delivered) of 16 files delivered"
sleep 1.2 # one more status file
st=$T/rx/state/status
"$BIN/diode-rx" -c "$T/rx/conf" status > "$T/status.txt" || true
bad_tag_status=$(awk '$1 == "rejected_bad_tag" { print $2 }' "$st")
malformed_status=$(awk '$1 == "rejected_malformed" { print $2 }' "$st")
log "status file: $bad_tag_status bad tag, $malformed_status malformed"
[ "${bad_tag_status:-0}" -gt 0 ] || fail "the status file counts no bad tag: $(cat "$st")"
grep -Eq "rejected: +[1-9][0-9]* bad tag" "$T/status.txt" || fail "diode-rx status shows no bad tag"

stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?" # flushes the last auth_failures record
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 16 ] || fail "not exactly 16 deliveries"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a file failed"

received=$(linksim_stat sim received)
corrupted=$(linksim_stat sim corrupted)
truncated=$(linksim_stat sim truncated)
python3 - "$T/rx/audit.jsonl" "$received" "$corrupted" "$truncated" <<'PY' ||
import json, sys
audit, received, corrupted, truncated = sys.argv[1], *map(int, sys.argv[2:])
fields = ("bad_tag", "replay", "malformed", "no_session_key", "unknown_sender", "old_session",
          "announce_rate_limited")
total = {f: 0 for f in fields}
for e in map(json.loads, open(audit, encoding="utf-8")):
    if e["event"] == "auth_failures":
        for f in fields:
            total[f] += e.get(f, 0)
rejected = sum(total.values())
altered = corrupted + truncated
# A datagram both truncated and corrupted is counted twice by linksim but
# refused once: about received * 1 % * 1 % of them.
both = received * 0.0001
print(f"linksim altered {altered} datagrams ({corrupted} corrupted, {truncated} truncated, "
      f"~{both:.0f} both) of {received}; receiver refused {rejected}: {total}")
if rejected > altered:
    sys.exit("more datagrams refused than linksim altered: authentic ones refused?")
if rejected < altered - (3 * both + 5):
    sys.exit("fewer datagrams refused than linksim altered: some altered datagram was accepted")
if total["bad_tag"] == 0 or total["malformed"] == 0:
    sys.exit("expected both bad tags (bit flips) and malformed datagrams (truncations)")
PY
	fail "rejection counts do not match the alterations"
[ "$corrupted" -gt 80 ] && [ "$truncated" -gt 80 ] || fail "linksim altered too few datagrams"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
