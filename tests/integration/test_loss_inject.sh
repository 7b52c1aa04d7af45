#!/usr/bin/env bash
# Hostile datagrams on the link: over 100 000 injected during a transfer,
# random ones (half shaped like ours, some with the live session and epoch)
# and replays, both of the current session (linksim's ring) and of an EARLIER
# session captured in a first run (--capture, then --replay-file). None is
# accepted: nothing unexpected is delivered, nothing twice, the transfer
# completes, and the receiver's rejection totals account for the injections.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
make_tx tx "$p_sim" tx rx "link.rate=100M" "link.repeat=1"
make_mixed_files "$T/src/first" 10 $((512 * 1024)) 21
mkdir -p "$T/src/second"
for i in $(seq 1 12); do
	random_file "$T/src/second/s$i.bin" $((3 * 1024 * 1024 + i))
done

start_rx rx
log "first run: capture session 1"
start_linksim sim1 "$p_sim" "$p_rx" --seed 21 --capture "$T/session1.cap"
start_tx tx
mkdir -p "$T/pub1"
cp -a "$T/src/first" "$T/pub1/"
publish "$T/pub1" "$T/tx/outbox"
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 10 || fail "first run: files not delivered"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim1 || fail "linksim exited with status $?"
captured=$(linksim_stat sim1 forwarded)
[ -s "$T/session1.cap" ] && [ "$captured" -gt 300 ] || fail "no capture of the first session"
log "captured $captured datagrams of session 1 ($(stat -c %s "$T/session1.cap") bytes)"

log "second run: a new session under 40 000 injected datagrams per second"
start_linksim sim2 "$p_sim" "$p_rx" --seed 22 --inject-random 20000 --inject-replay 20000 \
	--replay-file "$T/session1.cap"
start_tx tx
mkdir -p "$T/pub2"
cp -a "$T/src/second" "$T/pub2/"
publish "$T/pub2" "$T/tx/outbox"
# 36 MiB at 100 Mb/s: about 3.5 s on the wire, during which > 100 000 are injected.
wait_for 45 audit_at_least "$T/rx/audit.jsonl" file_delivered 22 ||
	fail "second run: only $(($(audit_count "$T/rx/audit.jsonl" file_delivered) - 10)) of 12" \
		"files delivered under injection"
injected=$(($(linksim_stat sim2 injected_random) + $(linksim_stat sim2 injected_replay)))
log "transfer complete; $injected datagrams injected so far"
[ "$injected" -ge 100000 ] || fail "only $injected datagrams injected during the transfer"
stop_daemon sim2 || fail "linksim exited with status $?"
sleep 1.5 # anything accepted late would be delivered now
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"

inj_random=$(linksim_stat sim2 injected_random)
inj_replay=$(linksim_stat sim2 injected_replay)
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent: something injected was delivered"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 22 ] || fail "not exactly 22 deliveries"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a transfer failed"
[ "$(audit_count "$T/rx/audit.jsonl" file_rejected)" = 0 ] || fail "a forged transfer got as far as file_rejected"
[ "$(audit_count "$T/rx/audit.jsonl" session_started)" = 2 ] ||
	fail "expected exactly the two real sessions to start (a replayed one was accepted?)"
python3 - "$T/rx/audit.jsonl" "$inj_random" "$inj_replay" <<'PY' ||
import json, sys
audit, random_n, replay_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fields = ("bad_tag", "replay", "malformed", "no_session_key", "unknown_sender", "old_session",
          "announce_rate_limited")
total = {f: 0 for f in fields}
for e in map(json.loads, open(audit, encoding="utf-8")):
    if e["event"] == "auth_failures":
        for f in fields:
            total[f] += e.get(f, 0)
rejected = sum(total.values())
injected = random_n + replay_n
print(f"injected {injected} ({random_n} random, {replay_n} replays); refused {rejected}: {total}")
# Every injected datagram that reached the receiver is refused; the socket may
# drop a few under the flood, nothing authentic is refused (no loss model).
if rejected > injected:
    sys.exit("more datagrams refused than injected: authentic ones refused?")
if rejected < 0.97 * injected:
    sys.exit(f"only {rejected} of {injected} injected datagrams refused: accepted, or dropped?")
if total["replay"] == 0 or total["malformed"] == 0 or total["bad_tag"] == 0:
    sys.exit("expected replays, malformed and bad-tag datagrams among the refusals")
if total["no_session_key"] + total["old_session"] == 0:
    sys.exit("the replays of session 1 were not refused as an old session")
PY
	fail "the receiver's rejection totals do not account for the injections"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
