#!/usr/bin/env bash
# Reordering and duplication, no loss: 10 % of the datagrams held back behind
# 50 later ones, 10 % sent twice. Every file arrives byte-identical exactly
# once (no name.1.ext copy, one file_delivered per file), none fails, and the
# receiver counted the reordered datagrams and refused the duplicates as
# replays.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
make_tx tx "$p_sim" tx rx "link.rate=200M" "link.repeat=1"
make_mixed_files "$T/src" 80 $((2 * 1024 * 1024)) 3

start_rx rx
start_linksim sim "$p_sim" "$p_rx" --seed 13 --reorder 0.1 --reorder-delay 50 --duplicate 0.1
start_tx tx
publish "$T/src" "$T/tx/outbox"
log "80 files published; 10 % reordered, 10 % duplicated"

wait_for 40 audit_at_least "$T/rx/audit.jsonl" file_delivered 80 ||
	fail "only $(audit_count "$T/rx/audit.jsonl" file_delivered) of 80 files delivered"
wait_for 10 no_files "$T/tx/outbox" || fail "files stayed in the outbox"
sleep 1.5 # anything delivered twice would show now
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent (a duplicate?)"
python3 - "$T/rx/audit.jsonl" <<'PY' || fail "duplicate deliveries in the audit"
import collections, json, sys
paths = collections.Counter(json.loads(l).get("path") for l in open(sys.argv[1], encoding="utf-8")
                            if json.loads(l)["event"] == "file_delivered")
dups = [p for p, n in paths.items() if n > 1]
if len(paths) != 80 or dups:
    sys.exit(f"{len(paths)} distinct paths delivered, delivered more than once: {dups}")
PY
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a file failed"
# Status counters (this session): reordered datagrams seen, no loss left over.
sleep 1.2 # the status file is rewritten every second
st=$T/rx/state/status
reordered=$(awk '$1 == "datagrams_reordered" { print $2 }' "$st")
lost=$(awk '$1 == "datagrams_lost" { print $2 }' "$st")
log "receiver: $reordered reordered, $lost lost (sequence gaps not filled)"
[ "${reordered:-0}" -gt 100 ] || fail "the receiver counted only ${reordered:-0} reordered datagrams"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
duplicated=$(linksim_stat sim duplicated)
reorder_sim=$(linksim_stat sim reordered)
replays=$(python3 -c '
import json, sys
print(sum(e.get("replay", 0) for e in map(json.loads, open(sys.argv[1], encoding="utf-8"))
          if e["event"] == "auth_failures"))' "$T/rx/audit.jsonl")
log "linksim: $reorder_sim reordered, $duplicated duplicated; receiver refused $replays replays"
[ "$duplicated" -gt 100 ] && [ "$reorder_sim" -gt 100 ] || fail "linksim did not reorder/duplicate"
# Every duplicate is a replay of an authentic datagram: refused by the window.
[ "$replays" -ge $((duplicated * 95 / 100)) ] && [ "$replays" -le "$duplicated" ] ||
	fail "$duplicated datagrams duplicated but $replays refused as replays"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
