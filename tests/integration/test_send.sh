#!/usr/bin/env bash
# `diode-tx -c FILE send PATH...` with the pair running: a file and a
# directory are placed in the outbox, the command exits 0 once they are on
# the wire, and they arrive byte-exact; without a terminal it prints one line
# per file; under a pseudo-terminal it draws a progress display; a missing
# PATH or a name already in the outbox places nothing (exit 2); with diode-tx
# stopped it says so and exits 1, leaving the files in the outbox, which the
# next diode-tx sends.
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$p_rx" rx tx
# settle_ms is long: only a rename into the outbox (what send does) is taken
# at once, so a send that took 30 s would show the files were not renamed in.
make_tx tx "$p_rx" tx rx "link.rate=200M" "files.settle_ms=30000"
mkdir -p "$T/src/dir/sub" "$T/src2" "$T/src3"
random_file "$T/src/f1.bin" 300000
random_file "$T/src/dir/a.bin" 1
random_file "$T/src/dir/sub/b.bin" 150000
: > "$T/src/dir/sub/empty.bin"
start_rx rx
start_tx tx
send_cmd() { "$BIN/diode-tx" -c "$T/tx/conf" send "$@"; }

# 1. A file and a directory, no terminal: one line per file, exit 0.
rc=0
send_cmd --timeout 60s "$T/src/f1.bin" "$T/src/dir/" > "$T/send1.out" 2> "$T/send1.err" || rc=$?
[ "$rc" = 0 ] || fail "send exited $rc: $(cat "$T/send1.err")"
[ "$(wc -l < "$T/send1.out")" = 4 ] || fail "expected 4 lines (one per file): $(cat "$T/send1.out")"
for f in f1.bin dir/a.bin dir/sub/b.bin dir/sub/empty.bin; do
	grep -qx "sent $f ([0-9]* bytes)" "$T/send1.out" || fail "no line for $f: $(cat "$T/send1.out")"
done
[ -z "$(find "$T/tx/outbox" -name '.diode-send*')" ] || fail "staging directory left in the outbox"
[ -f "$T/src/f1.bin" ] && [ -f "$T/src/dir/sub/b.bin" ] || fail "send removed a source file"
wait_for 15 same_listing "$T/src" "$T/rx/inbox" || fail "files not delivered"
compare_trees "$T/src" "$T/rx/inbox" || fail "inbox differs from the files sent"
log "file + directory sent and delivered byte-exact"

# 2. A missing PATH: nothing placed, exit 2. A name already in the outbox: same.
random_file "$T/src2/new.bin" 1000
rc=0
send_cmd "$T/src2/new.bin" "$T/nonexistent" > /dev/null 2> "$T/send2.err" || rc=$?
[ "$rc" = 2 ] || fail "send with a missing PATH exited $rc"
grep -q "nonexistent: No such file" "$T/send2.err" || fail "no clear message: $(cat "$T/send2.err")"
[ ! -e "$T/tx/outbox/new.bin" ] || fail "a file was placed although an argument was wrong"
mkdir -p "$T/tx/outbox/dir"
rc=0
send_cmd "$T/src/dir" > /dev/null 2> "$T/send3.err" || rc=$?
[ "$rc" = 0 ] || fail "sending a directory again (its empty directory left in the outbox) exited $rc: $(cat "$T/send3.err")"
wait_for 10 audit_at_least "$T/tx/audit.jsonl" file_sent 7 || fail "second send of dir not sent"
log "missing PATH refused; directory sent again into an existing directory"

# 3. Progress on a terminal (a pseudo-terminal through python's pty module):
# a slow rate so that the transfer lasts a few seconds.
stop_daemon tx
python3 - "$T/tx/conf" "$T/tx/conf.slow" <<'PY'
import sys
text = open(sys.argv[1]).read().replace("rate = 200M", "rate = 8M")
open(sys.argv[2], "w").write(text)
PY
cp "$T/tx/conf" "$T/tx/conf.fast"
cp "$T/tx/conf.slow" "$T/tx/conf"
start_tx tx
random_file "$T/src3/big.bin" 3000000
python3 - "$BIN/diode-tx" "$T/tx/conf" "$T/src3/big.bin" "$T/pty.out" <<'PY' || fail "send under a terminal failed: $(tr '\r\033' '|~' < "$T/pty.out" | tail -c 600)"
import os, pty, sys
prog, conf, path, out = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    os.execv(prog, [prog, "-c", conf, "send", "--timeout", "60s", path])
data = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
open(out, "wb").write(data)
sys.exit(os.waitstatus_to_exitcode(status))
PY
grep -aq 'big.bin *\[#*-*\] *[0-9]*%' "$T/pty.out" || fail "no progress bar drawn: $(tr '\r\033' '|~' < "$T/pty.out" | head -c 600)"
grep -aq 'total: 0/1 files.*ETA' "$T/pty.out" || fail "no total line with an ETA: $(tr '\r\033' '|~' < "$T/pty.out" | head -c 600)"
grep -aq 'sent big.bin (3000000 bytes)' "$T/pty.out" || fail "no final line"
grep -aq $'\033\\[[0-9]*A' "$T/pty.out" || fail "the display was not redrawn in place"
log "terminal progress drawn"

# 4. diode-tx stopped: send says so, exits 1, the file stays in the outbox
# and is sent once diode-tx runs again.
stop_daemon tx
# The next diode-tx finds the file at its start-up scan: taken once settled.
sed 's/^settle_ms = .*/settle_ms = 500/' "$T/tx/conf.fast" > "$T/tx/conf"
random_file "$T/src2/later.bin" 5000
rc=0
send_cmd "$T/src2/later.bin" > /dev/null 2> "$T/send4.err" || rc=$?
[ "$rc" = 1 ] || fail "send with diode-tx stopped exited $rc"
grep -q "diode-tx is not running" "$T/send4.err" || fail "no clear message: $(cat "$T/send4.err")"
grep -q "sent when it starts" "$T/send4.err" || fail "does not say the file will be sent: $(cat "$T/send4.err")"
[ -f "$T/tx/outbox/later.bin" ] || fail "the file is not in the outbox"
start_tx tx
wait_for 15 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 "path=later.bin" ||
	fail "the file left in the outbox was not sent by the next diode-tx"
cmp "$T/src2/later.bin" "$T/rx/inbox/later.bin" || fail "later.bin differs"

# 5. A second diode-tx on the same state directory is refused.
rc=0
"$BIN/diode-tx" -c "$T/tx/conf" > /dev/null 2> "$T/second.err" || rc=$?
[ "$rc" = 1 ] || fail "a second diode-tx on the same state directory exited $rc"
grep -q "another diode-tx (pid ${PID[tx]}) is running" "$T/second.err" || fail "$(cat "$T/second.err")"
is_running tx || fail "the first diode-tx stopped"
log "stopped daemon reported; second instance refused"

stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
