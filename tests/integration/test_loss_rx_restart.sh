#!/usr/bin/env bash
# diode-rx killed with SIGKILL in the middle of a large file sent with
# repeat = 2 (1 % loss on the link), restarted a second later: it resumes the
# partial transfer from its state directory and staging, the datagrams it
# missed while down come with the second pass, and the file is delivered
# exactly once, byte-identical. Nothing partial ever shows in the inbox
# (watched every 20 ms through both runs).
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
p_sim=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
# 48 MiB at 100 Mb/s with 64+8: a pass takes about 4.7 s; then 2 s of pause.
make_tx tx "$p_sim" tx rx "link.rate=100M" "link.fec_data=64" "link.fec_parity=8" \
	"link.interleave=8" "link.repeat=2" "link.repeat_gap=2s"
name="big file.bin"
mkdir -p "$T/src"
random_file "$T/src/$name" $((48 * 1024 * 1024))

start_rx rx
inbox_guard_start "$T/rx/inbox" "$T/src"
start_linksim sim "$p_sim" "$p_rx" --seed 31 --loss 0.01
start_tx tx
publish "$T/src" "$T/tx/outbox"
wait_for 10 audit_at_least "$T/tx/audit.jsonl" file_queued 1 || fail "diode-tx did not take the file"
sleep 1.5
[ "$(audit_count "$T/tx/audit.jsonl" file_sent)" = 0 ] || fail "the first pass ended already"
[ "$(find "$T/rx/inbox/.diode-staging" -type f | wc -l)" -ge 1 ] ||
	fail "diode-rx holds no staging file: the transfer had not started?"
log "killing diode-rx (-9) during the first pass"
kill9_daemon rx
sleep 1
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 0 ] || fail "delivered before the kill?"
log "restarting diode-rx"
start_rx rx
t_restart=$(date +%s.%N)
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 ||
	fail "the file was not delivered after the restart; rx audit:" \
		"$(grep -E 'file_' "$T/rx/audit.jsonl" || echo none)"
t_delivered=$(date +%s.%N)
wait_for 15 audit_at_least "$T/tx/audit.jsonl" file_sent 1 || fail "diode-tx did not finish its passes"
sleep 2 # a second delivery from the end of the second pass would show now
inbox_guard_stop
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from what was sent"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered "path=$name")" = 1 ] || fail "not exactly one delivery"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 0 ] || fail "a transfer was reported failed"
grep -q 'resuming 1 partial transfer' "$T/rx/stderr.log" ||
	fail "the restarted diode-rx did not resume the partial transfer"
# What diode-rx missed while down can only come from the second pass, which
# starts repeat_gap (2 s) after the first ends, itself after the restart.
python3 -c "import sys; sys.exit(0 if $t_delivered - $t_restart > 2 else 1)" ||
	fail "delivered $(python3 -c "print(round($t_delivered - $t_restart, 1))") s after the" \
		"restart: before the second pass could have filled the gap?"
log "delivered $(python3 -c "print(round($t_delivered - $t_restart, 1))") s after the restart"
stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon sim || fail "linksim exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
