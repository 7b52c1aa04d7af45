#!/usr/bin/env bash
# The receiver's inbox on a full file system. The inbox (and its staging
# directory) live on an 8 MiB tmpfs with [files] min_free = 2M; the state
# directory and the audit log stay on the ordinary disk.
#  1. a 10 MiB file (more than the free space) is refused when its staging
#     file would be created: staging_refused + file_failed in the audit log;
#  2. a 7 MiB file (fits, but would cross the 2 MiB reserve) is refused the
#     same way, naming min_free;
#  3. a 5 MiB file is accepted, then the file system is filled by someone
#     else while it is being written: the write fails (ENOSPC) and the
#     transfer fails with an audit event;
#  4. after space is freed, the next files are delivered byte-identical.
# After every failure: nothing partial in the inbox, the staging directory
# empty, diode-rx still running. Needs root and mount(2); skipped otherwise.
. "$(dirname "$0")/lib.sh"

fs=$T/rxfs
mkdir -p "$fs"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=8m,mode=0755 diode-test-tmpfs "$fs" 2>"$T/mount.err"; then
	echo "SKIP ($TEST_NAME): cannot mount a small tmpfs here ($(cat "$T/mount.err" 2>/dev/null || echo 'not root')); run as root on a system that allows mount(2)"
	exit 0
fi
EXIT_HOOKS+=("umount -l '$fs' 2>/dev/null")

port=$(free_udp_port)
gen_keys tx
gen_keys rx
inbox=$fs/inbox
staging=$inbox/.diode-staging
mkdir -p "$inbox"
make_rx rx "$port" rx tx "files.inbox=$inbox" "files.min_free=2M"
# 20 Mb/s: the 5 MiB file of step 3 takes about 2.5 s on the wire.
make_tx tx "$port" tx rx "link.rate=20M"
src=$T/src
mkdir -p "$src" "$T/stage"
start_rx rx
start_tx tx

# send NAME BYTES: make a file in src and rename it into the outbox.
send() {
	random_file "$src/$1" "$2"
	cp -- "$src/$1" "$T/stage/$1"
	mv -- "$T/stage/$1" "$T/tx/outbox/$1"
}

# after_failure NAME: the transfer of NAME failed cleanly.
after_failure() {
	local name=$1
	is_running rx || fail "diode-rx died after the failure of $name"
	[ "$(audit_count "$T/rx/audit.jsonl" file_delivered "path=$name")" = 0 ] ||
		fail "$name was delivered"
	[ -z "$(find "$inbox" -mindepth 1 -path "$staging" -prune -o -print -quit)" ] ||
		fail "something reached the inbox after the failure of $name: $(ls -A "$inbox")"
	wait_for 5 no_files "$staging" ||
		fail "staging not cleaned after the failure of $name: $(ls -A "$staging")"
	rm -f "$src/$name"
}

# ---- 1. larger than the free space ----
send big.bin $((10 * 1024 * 1024))
wait_for 20 audit_at_least "$T/rx/audit.jsonl" staging_refused 1 "reason~not enough space" ||
	fail "no staging_refused event for a file larger than the free space"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_failed 1 ||
	fail "no file_failed event for a file larger than the free space"
wait_for 20 audit_at_least "$T/tx/audit.jsonl" file_sent 1 path=big.bin ||
	fail "diode-tx did not finish sending big.bin"
sleep 1
after_failure big.bin

# ---- 2. fits, but not with the reserve ----
send reserve.bin $((7 * 1024 * 1024))
wait_for 20 audit_at_least "$T/rx/audit.jsonl" staging_refused 2 "reason~min_free 2097152" ||
	fail "no staging_refused event naming min_free for a file that would cross the reserve"
wait_for 20 audit_at_least "$T/tx/audit.jsonl" file_sent 1 path=reserve.bin ||
	fail "diode-tx did not finish sending reserve.bin"
sleep 1
after_failure reserve.bin
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 2 ] || fail "expected 2 file_failed events"

# ---- 3. the disk fills up while a file is written ----
send fill.bin $((5 * 1024 * 1024))
staged() { [ -n "$(find "$staging" -name '*.part' -size +0 -print -quit 2>/dev/null)" ]; }
wait_for 10 staged || fail "fill.bin was not accepted into staging"
# Someone else takes every free byte.
dd if=/dev/zero of="$fs/filler" bs=4k 2>/dev/null || true
log "file system full: $(df -k "$fs" | tail -n 1)"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_failed 1 "reason~No space left" ||
	fail "no file_failed event naming the full disk"
wait_for 20 audit_at_least "$T/tx/audit.jsonl" file_sent 1 path=fill.bin ||
	fail "diode-tx did not finish sending fill.bin"
sleep 1
after_failure fill.bin

# ---- 4. space returns: delivery resumes ----
rm -f "$fs/filler"
send after.bin $((5 * 1024 * 1024))
send small-1.csv 1000
send small-2.csv 70000
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 3 ||
	fail "files were not delivered after space was freed"
compare_trees "$src" "$inbox" || fail "inbox differs from what was sent after space was freed"
[ "$(audit_count "$T/rx/audit.jsonl" file_failed)" = 3 ] || fail "unexpected file_failed events"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/rx/stderr.log" "$T/tx/stderr.log" || fail "sanitizer report"
log "OK"
