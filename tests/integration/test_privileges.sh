#!/usr/bin/env bash
# Least privilege on running daemons. Both run with [process] user =
# diode-test (created here when missing): the key files stay root's (0600),
# read before the switch. While they run, /proc/PID/status must show a
# non-root user, no capabilities, NoNewPrivs: 1 and Seccomp: 2 (filter mode),
# and files must still be delivered, owned by diode-test; the audit log
# reopened after rotation (SIGHUP) is recreated inside the sandbox. Then:
# as root without a user and without allow_root, diode-rx refuses to run and
# says what to do; an unknown user is reported by -n.
# Needs root (to create the user and start the daemons as root): skipped
# otherwise.
. "$(dirname "$0")/lib.sh"

USER_NAME=diode-test
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP ($TEST_NAME): needs root to create '$USER_NAME' and switch to it; run as root"
	exit 0
fi
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		"$USER_NAME" || fail "cannot create the test user $USER_NAME"
	log "created system user $USER_NAME"
fi
uid=$(id -u "$USER_NAME")
[ "$uid" -ne 0 ] || fail "$USER_NAME has uid 0"

port=$(free_udp_port)
gen_keys tx
gen_keys rx
chmod 0600 "$T/keys"/*.key # root's, read before the switch
make_rx rx "$port" rx tx "process.user=$USER_NAME" "process.allow_root="
make_tx tx "$port" tx rx "process.user=$USER_NAME" "process.allow_root="
# The daemons' directories belong to the service user, as an installation
# would make them; the scratch directory above them must be traversable.
chmod 0755 "$T"
mkdir -p "$T/rx/inbox/.diode-staging"
touch "$T/rx/audit.jsonl" "$T/tx/audit.jsonl"
chown -R "$USER_NAME:" "$T/rx" "$T/tx"

start_rx rx
start_tx tx
rx_pid=${PID[rx]}

# ---- what the kernel says about the running receiver ----
status=$(cat "/proc/$rx_pid/status")
field() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' <<<"$status"; }
log "diode-rx status: Uid $(field Uid) | Gid $(field Gid) | Groups $(field Groups) |" \
	"CapEff $(field CapEff) | NoNewPrivs $(field NoNewPrivs) | Seccomp $(field Seccomp)"
for id in $(field Uid); do
	[ "$id" = "$uid" ] || fail "diode-rx Uid line is '$(field Uid)', expected $uid everywhere"
done
for id in $(field Gid); do
	[ "$id" != 0 ] || fail "diode-rx still has gid 0: '$(field Gid)'"
done
[ "$(field NoNewPrivs)" = 1 ] || fail "diode-rx NoNewPrivs is '$(field NoNewPrivs)', not 1"
[ "$(field Seccomp)" = 2 ] || fail "diode-rx Seccomp is '$(field Seccomp)', not 2 (filter)"
[ "$(field CapEff)" = 0000000000000000 ] || fail "diode-rx has capabilities: $(field CapEff)"
[ "$(field CapPrm)" = 0000000000000000 ] || fail "diode-rx has permitted capabilities"
tx_status=$(cat "/proc/${PID[tx]}/status")
grep -Eq "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid\$" <<<"$tx_status" || fail "diode-tx is not running as $uid"
grep -Eq '^Seccomp:\s+2$' <<<"$tx_status" || fail "diode-tx has no seccomp filter"
grep -Eq '^NoNewPrivs:\s+1$' <<<"$tx_status" || fail "diode-tx lacks NoNewPrivs"
[ "$(audit_count "$T/rx/audit.jsonl" process_restricted "uid=$uid" seccomp=kill)" = 1 ] ||
	fail "no process_restricted audit event with uid $uid in the rx audit log"

# ---- it still delivers ----
src=$T/src
mkdir -p "$src/plant a/line 2" "$T/stage"
random_file "$src/export.csv" 300000
random_file "$src/plant a/line 2/trend.bin" $((3 * 1024 * 1024))
random_file "$src/empty.txt" 0
(cd "$src" && find . -type f -print0 | while IFS= read -r -d '' f; do
	mkdir -p "$T/stage/$(dirname "$f")"
	cp -- "$f" "$T/stage/$f"
done)
# Renamed into the outbox within one file system, directories first.
mv -- "$T/stage/plant a" "$T/stage/export.csv" "$T/stage/empty.txt" "$T/tx/outbox/"
chown -R "$USER_NAME:" "$T/tx/outbox"
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 3 ||
	fail "files were not delivered by the unprivileged receiver"
compare_trees "$src" "$T/rx/inbox" || fail "inbox differs from what was sent"
owner=$(stat -c %u "$T/rx/inbox/plant a/line 2/trend.bin")
[ "$owner" = "$uid" ] || fail "delivered file owned by uid $owner, not $uid"
wait_for 10 no_files "$T/tx/outbox" || fail "sent files stayed in the outbox"

# ---- audit log rotation inside the sandbox ----
mv "$T/rx/audit.jsonl" "$T/rx/audit.jsonl.1"
kill -HUP "$rx_pid"
wait_for 5 test -f "$T/rx/audit.jsonl" || true # created at the next event
random_file "$T/stage/after-rotation.bin" 5000
mv "$T/stage/after-rotation.bin" "$T/tx/outbox/"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 path=after-rotation.bin ||
	fail "no file_delivered in the audit log reopened after SIGHUP"
[ "$(stat -c %u "$T/rx/audit.jsonl")" = "$uid" ] || fail "reopened audit log not owned by $uid"
grep -q "cannot reopen audit log" "$T/rx/stderr.log" && fail "diode-rx could not reopen its audit log"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
no_sanitizer_reports "$T/rx/stderr.log" "$T/tx/stderr.log" || fail "sanitizer report"

# ---- refusals ----
make_rx root "$port" rx tx "process.allow_root=" "process.user="
rc=0
"$BIN/diode-rx" -c "$T/root/conf" >/dev/null 2>"$T/root/err" || rc=$?
[ "$rc" -ne 0 ] || fail "diode-rx ran as root without [process] user or allow_root"
grep -q "refusing to run as root" "$T/root/err" && grep -q "allow_root = yes" "$T/root/err" ||
	fail "the refusal does not say what to do: $(cat "$T/root/err")"

make_rx nouser "$port" rx tx "process.user=no-such-user-dd"
rc=0
"$BIN/diode-rx" -n -c "$T/nouser/conf" >/dev/null 2>"$T/nouser/err" || rc=$?
[ "$rc" -ne 0 ] || fail "diode-rx -n accepted an unknown user"
grep -q "\[process\] user: no user 'no-such-user-dd'" "$T/nouser/err" ||
	fail "unknown user not reported as such: $(cat "$T/nouser/err")"
log "OK"
