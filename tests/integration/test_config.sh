#!/usr/bin/env bash
# Configuration checking (-n), error messages naming file:line, key file
# safety (mode, symbolic links), diode-keygen never overwriting, and clean
# SIGTERM shutdown of both daemons with nothing partial in the inbox.
. "$(dirname "$0")/lib.sh"

port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx
make_tx tx "$port" tx rx "link.rate=100M"

# expect_ok PROGRAM CONF: -n prints "configuration OK" and exits 0.
expect_ok() {
	local out rc=0
	out=$("$BIN/$1" -n -c "$2" 2>"$T/err") || rc=$?
	[ "$rc" = 0 ] || fail "$1 -n -c $2: exit status $rc: $(cat "$T/err")"
	[ "$out" = "configuration OK" ] || fail "$1 -n -c $2 printed '$out', not 'configuration OK'"
}

# expect_error PROGRAM CONF REGEX [what]: -n exits non-zero and stderr matches
# REGEX (extended, searched). Without -n the daemon must refuse to start too.
expect_error() {
	local prog=$1 conf=$2 re=$3 what=${4:-} rc=0 out
	out=$("$BIN/$prog" -n -c "$conf" 2>"$T/err") || rc=$?
	[ "$rc" != 0 ] || fail "$prog -n accepted $conf ($what)"
	[ -z "$out" ] || fail "$prog -n printed '$out' on stdout for a bad configuration ($what)"
	grep -Eq -- "$re" "$T/err" ||
		fail "$prog -n -c $conf ($what): message does not match /$re/: $(cat "$T/err")"
	rc=0
	timeout 10 "$BIN/$prog" -c "$conf" >/dev/null 2>&1 || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$prog started with a bad configuration ($what), status $rc"
	log "$prog refuses $what: $(head -n 1 "$T/err")"
}

# line_of FILE REGEX: number of the first line matching REGEX.
line_of() { grep -nE -- "$2" "$1" | head -n 1 | cut -d: -f1; }

# ---- the example configurations, with paths adapted ----
log "example configurations"
sed -e "s|^destination = .*|destination = 127.0.0.1:$port|" \
	-e "s|^secret = .*|secret = $T/keys/tx.key|" \
	-e "s|^peer = .*|peer = $T/keys/rx.pub|" \
	-e "s|^outbox = .*|outbox = $T/tx/outbox|" \
	-e "s|^sent = .*|sent = $T/tx/sent|" \
	-e "s|^dir = .*|dir = $T/tx/state|" \
	-e "s|^audit = .*|audit = $T/tx/example-audit.jsonl|" \
	-e "s|^#metrics = .*|#metrics = $T/tx/diode-tx.prom|" \
	"$ROOT/config/tx.conf" > "$T/example-tx.conf"
sed -e "s|^listen = .*|listen = 127.0.0.1:$port|" \
	-e "s|^secret = .*|secret = $T/keys/rx.key|" \
	-e "s|^peer = .*|peer = $T/keys/tx.pub|" \
	-e "s|^inbox = .*|inbox = $T/rx/inbox|" \
	-e "s|^dir = .*|dir = $T/rx/state|" \
	-e "s|^audit = .*|audit = $T/rx/example-audit.jsonl|" \
	-e "s|^#metrics = .*|#metrics = $T/rx/diode-rx.prom|" \
	"$ROOT/config/rx.conf" > "$T/example-rx.conf"
expect_ok diode-tx "$T/example-tx.conf"
expect_ok diode-rx "$T/example-rx.conf"
# Every optional key of the examples, uncommented with its documented value.
# Commented sections ([channel.NAME]) are uncommented too, so their keys stay in them.
printf 'example\n' > "$T/mqtt-password" && chmod 600 "$T/mqtt-password"
sed -E -e 's/^#([a-z_]+ = )/\1/' -e 's/^#(\[[a-z_.]+\])$/\1/' \
	-e "s|^mqtt_password_file = .*|mqtt_password_file = $T/mqtt-password|" \
	"$T/example-tx.conf" > "$T/example-tx-all.conf"
grep -q '^rekey = 1h' "$T/example-tx-all.conf" || fail "could not uncomment the optional tx keys"
sed -E -e 's/^#([a-z_]+ = )/\1/' -e 's/^#(\[[a-z_.]+\])$/\1/' \
	-e "s|^staging = .*|staging = $T/rx/inbox/.diode-staging|" \
	-e "s|^quarantine = .*|quarantine = $T/rx/quarantine|" \
	-e "s|^mqtt_password_file = .*|mqtt_password_file = $T/mqtt-password|" \
	-e "s|^sink = dir:.*|sink = dir:$T/rx/hist|" "$T/example-rx.conf" > "$T/example-rx-all.conf"
mkdir -p "$T/rx/quarantine" "$T/rx/hist"
expect_ok diode-tx "$T/example-tx-all.conf"
expect_ok diode-rx "$T/example-rx-all.conf"
expect_ok diode-tx "$T/tx/conf"
expect_ok diode-rx "$T/rx/conf"

# ---- bad configurations ----
log "bad configurations"
c=$T/bad-unknown-tx.conf
sed 's/^rate = .*/&\nbogus_key = 1/' "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "$c:$(line_of "$c" '^bogus_key'):.*bogus_key" "an unknown key"
c=$T/bad-unknown-rx.conf
sed 's/^inbox = .*/&\ninbox_typo = x/' "$T/example-rx.conf" > "$c"
expect_error diode-rx "$c" "$c:$(line_of "$c" '^inbox_typo'):.*inbox_typo" "an unknown key"
c=$T/bad-section.conf
sed 's/^\[state\]/[stat]/' "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "$c(:[0-9]+)?:" "an unknown section"
for bad in fast 0 -5 1Q "" 1e400; do
	c=$T/bad-rate.conf
	sed "s/^rate = .*/rate = $bad/" "$T/example-tx.conf" > "$c"
	expect_error diode-tx "$c" "$c:$(line_of "$c" '^rate'):.*rate" "rate = '$bad'"
done
c=$T/bad-timeout.conf
sed 's/^#timeout = .*/timeout = soon/' "$T/example-rx.conf" > "$c"
expect_error diode-rx "$c" "$c:$(line_of "$c" '^timeout'):.*timeout" "timeout = soon"
c=$T/bad-dgram.conf
sed 's/^#datagram_size = .*/datagram_size = 1500/' "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "$c:$(line_of "$c" '^datagram_size'):.*datagram_size" "datagram_size = 1500"
c=$T/missing-rate.conf
grep -v '^rate = ' "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "$c(:[0-9]+)?:.*rate.*required" "a missing rate"
c=$T/missing-listen.conf
grep -v '^listen = ' "$T/example-rx.conf" > "$c"
expect_error diode-rx "$c" "$c(:[0-9]+)?:.*listen.*required" "a missing listen"
c=$T/missing-inbox.conf
grep -v '^inbox = ' "$T/example-rx.conf" > "$c"
expect_error diode-rx "$c" "$c(:[0-9]+)?:.*inbox.*required" "a missing inbox"
c=$T/no-outbox-dir.conf
sed "s|^outbox = .*|outbox = $T/does-not-exist|" "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "$c:$(line_of "$c" '^outbox'):.*does-not-exist" "a missing outbox directory"
rc=0
"$BIN/diode-tx" -n -c "$T/nonexistent.conf" 2>"$T/err" || rc=$?
[ "$rc" != 0 ] && grep -q "nonexistent.conf" "$T/err" || fail "a missing configuration file is not reported by name"

# ---- key files ----
log "key files"
cp -p "$T/keys/tx.key" "$T/keys/grp.key"
chmod 640 "$T/keys/grp.key"
c=$T/grp-tx.conf
sed "s|^secret = .*|secret = $T/keys/grp.key|" "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "chmod" "a group-readable secret key"
cp -p "$T/keys/rx.key" "$T/keys/grp-rx.key"
chmod 604 "$T/keys/grp-rx.key"
c=$T/grp-rx.conf
sed "s|^secret = .*|secret = $T/keys/grp-rx.key|" "$T/example-rx.conf" > "$c"
expect_error diode-rx "$c" "chmod" "an other-readable secret key"
ln -s "$T/keys/tx.key" "$T/keys/link.key"
c=$T/link-tx.conf
sed "s|^secret = .*|secret = $T/keys/link.key|" "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "link.key.*symbolic link" "a symlinked secret key"
ln -s "$T/keys/tx.pub" "$T/keys/link.pub"
c=$T/link-rx.conf
sed "s|^peer = .*|peer = $T/keys/link.pub|" "$T/example-rx.conf" > "$c"
expect_error diode-rx "$c" "link.pub.*symbolic link" "a symlinked peer key"
c=$T/swapped.conf
sed "s|^peer = .*|peer = $T/keys/rx.key|" "$T/example-tx.conf" > "$c"
expect_error diode-tx "$c" "rx.key" "a secret key given as the peer's public key"

# ---- diode-keygen ----
log "diode-keygen"
[ "$(stat -c %a "$T/keys/tx.key")" = 600 ] || fail "diode-keygen wrote tx.key with mode $(stat -c %a "$T/keys/tx.key")"
before=$(sha256sum "$T/keys/tx.key" "$T/keys/tx.pub")
rc=0
"$BIN/diode-keygen" "$T/keys/tx" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" != 0 ] || fail "diode-keygen overwrote an existing key pair"
grep -qiE "overwrite|exists" "$T/err" || fail "diode-keygen refusal does not say why: $(cat "$T/err")"
[ "$(sha256sum "$T/keys/tx.key" "$T/keys/tx.pub")" = "$before" ] || fail "the existing key pair changed"
# Only the .pub exists: no .key may be left behind, the .pub is untouched.
echo "not a key" > "$T/keys/half.pub"
rc=0
"$BIN/diode-keygen" "$T/keys/half" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" != 0 ] || fail "diode-keygen overwrote an existing .pub"
[ ! -e "$T/keys/half.key" ] || fail "diode-keygen left half.key behind after refusing"
[ "$(cat "$T/keys/half.pub")" = "not a key" ] || fail "diode-keygen changed an existing .pub"

# ---- SIGTERM: idle, then in the middle of transfers ----
log "SIGTERM while idle"
start_rx rx
start_tx tx
stop_daemon tx || fail "idle diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "idle diode-rx exited with status $? on SIGTERM"

mkdir -p "$T/src" "$T/stage"
random_file "$T/src/first.bin" $((24 * 1024 * 1024))
random_file "$T/src/second.bin" $((24 * 1024 * 1024))
staging_files() { find "$T/rx/inbox/.diode-staging" -type f | wc -l; }
staging_busy() { [ "$(staging_files)" -ge 1 ]; }
staging_empty() { [ "$(staging_files)" = 0 ]; }
only_staging_in_inbox() {
	[ -z "$(find "$T/rx/inbox" -mindepth 1 -path "$T/rx/inbox/.diode-staging" -prune -o -print -quit)" ]
}

log "SIGTERM to diode-tx in the middle of a file"
start_rx rx
start_tx tx
cp "$T/src/first.bin" "$T/stage/first.bin"
mv "$T/stage/first.bin" "$T/tx/outbox/first.bin"
wait_for 10 staging_busy ||
	fail "the receiver never started rebuilding first.bin"
sleep 0.5
[ "$(audit_count "$T/tx/audit.jsonl" file_sent)" = 0 ] || fail "first.bin sent too fast to interrupt"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM during a transfer"
[ -f "$T/tx/outbox/first.bin" ] || fail "first.bin left the outbox although not completely sent"
no_files "$T/tx/sent" || fail "an unfinished file was moved to the sent directory"
[ "$(audit_count "$T/tx/audit.jsonl" file_abandoned "path=first.bin")" -ge 1 ] ||
	fail "no file_abandoned for first.bin in the tx audit"
[ "$(audit_count "$T/tx/audit.jsonl" session_stopped)" = 2 ] || fail "no session_stopped in the tx audit"
# The receiver hears the abort and drops the partial file.
wait_for 10 staging_empty ||
	fail "the partial first.bin is still in staging after the sender aborted it"
only_staging_in_inbox || fail "something partial appeared in the inbox"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = 0 ] || fail "an interrupted file was delivered"

log "restarting diode-tx: first.bin is sent again"
start_tx tx
wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 "path=first.bin" ||
	fail "first.bin was not delivered after diode-tx restarted"
cmp "$T/src/first.bin" "$T/rx/inbox/first.bin" || fail "first.bin differs"

log "SIGTERM to diode-rx in the middle of a file"
cp "$T/src/second.bin" "$T/stage/second.bin"
mv "$T/stage/second.bin" "$T/tx/outbox/second.bin"
wait_for 10 staging_busy ||
	fail "the receiver never started rebuilding second.bin"
sleep 0.5
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM during a transfer"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered "path=second.bin")" = 0 ] ||
	fail "second.bin was completely received within 0.5 s at 100 Mb/s; cannot test an interrupted transfer"
[ ! -e "$T/rx/inbox/second.bin" ] || fail "a partial second.bin is in the inbox"
# The partial transfer is kept for a later pass: exactly its data and metadata.
left=$(ls -A "$T/rx/inbox/.diode-staging" | sort | tr '\n' ' ')
case "$left" in
*-2.meta\ *-2.part\ ) ;;
*) fail "diode-rx should keep exactly the partial second.bin (.part + .meta) in staging, has: $left" ;;
esac
# diode-tx keeps going without a receiver (nothing comes back on a diode).
sleep 1
is_running tx || fail "diode-tx died while the receiver was down"
log "restarting diode-rx: the interrupted transfer resumes, and is reported by path"
start_rx rx
wait_for 40 audit_at_least "$T/rx/audit.jsonl" file_failed 1 "path=second.bin" ||
	fail "second.bin, missing its middle after the receiver restart, was not reported failed"
[ ! -e "$T/rx/inbox/second.bin" ] || fail "an incomplete second.bin reached the inbox"
wait_for 10 staging_empty || fail "staging not cleaned after the failure was reported"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
mkdir -p "$T/expect"
cp "$T/src/first.bin" "$T/expect/"
compare_trees "$T/expect" "$T/rx/inbox" || fail "inbox holds something else than first.bin"

for f in "$T/tx/audit.jsonl" "$T/rx/audit.jsonl"; do
	audit_valid "$f" || fail "$f malformed"
done
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
