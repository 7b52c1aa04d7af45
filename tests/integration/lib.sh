# Helpers for the integration tests: source it from a tests/integration/test_*.sh.
#
# Every test gets a scratch directory $T (mktemp -d under /tmp), removed on exit
# unless KEEP=1. A "node" is one daemon's world: $T/NAME holds its conf, its
# directories (outbox/sent/state for diode-tx, inbox/state for diode-rx), its
# audit log audit.jsonl and its stderr in stderr.log. Daemons started here are
# recorded and killed (-9) by the exit trap if still running.
#
# Binaries come from $BUILD (default build), relative to the repository root
# unless absolute.

set -eEuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in
/*) BIN=$BUILD ;;
*) BIN=$ROOT/$BUILD ;;
esac
TEST_NAME=$(basename "$0" .sh)

for _b in diode-tx diode-rx diode-keygen; do
	if [ ! -x "$BIN/$_b" ]; then
		echo "$TEST_NAME: $BIN/$_b missing; run 'make all' first" >&2
		exit 1
	fi
done

T=$(mktemp -d "/tmp/diode-it-$TEST_NAME.XXXXXX")
export PYTHONIOENCODING=utf-8
case $'\n'"$(locale -a 2>/dev/null)"$'\n' in
*$'\n'C.utf8$'\n'* | *$'\n'C.UTF-8$'\n'*) export LC_ALL=C.UTF-8 ;;
esac
declare -A PID=()   # node name -> pid of its daemon
EXTRA_PIDS=()       # helper processes (python senders, forwarders)
EXIT_HOOKS=()       # commands run at exit once the processes are gone (umount)

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$TEST_NAME" "$*"; }

# Dump what helps to understand a failure: tails of the daemon logs.
dump_logs() {
	local f
	for f in "$T"/*/stderr*.log; do
		[ -f "$f" ] || continue
		echo "---- ${f#"$T"/} (last 30 lines)" >&2
		tail -n 30 "$f" >&2 || true
	done
	for f in "$T"/*/audit.jsonl; do
		[ -f "$f" ] || continue
		echo "---- ${f#"$T"/} (last 15 lines)" >&2
		tail -n 15 "$f" >&2 || true
	done
}

fail() {
	echo "FAIL ($TEST_NAME): $*" >&2
	exit 1
}

# explain_status NAME STATUS: say why a daemon ended when a signal killed it;
# SIGSYS (159) means a system call outside its seccomp allow-list.
explain_status() {
	local name=$1 rc=$2
	if [ "$rc" -eq 159 ]; then
		echo "$TEST_NAME: $name was killed by SIGSYS: it made a system call outside its" \
			"seccomp allow-list (common/sandbox.c); the kernel log names it:" >&2
		dmesg 2>/dev/null | grep -E 'type=1326|seccomp' | tail -n 3 >&2 || true
	elif [ "$rc" -gt 128 ] && [ "$rc" -ne 137 ] && [ "$rc" -ne 143 ]; then
		echo "$TEST_NAME: $name was killed by signal $((rc - 128))" >&2
	fi
}

_on_err() {
	[ "$BASHPID" = "$$" ] || return 0
	echo "$TEST_NAME: command failed (status $1) at ${BASH_SOURCE[1]}:$2: $3" >&2
}
trap '_on_err $? $LINENO "$BASH_COMMAND"' ERR

_cleanup() {
	local rc=$? name pid hook
	set +e
	trap - ERR
	# A background child can run this trap if a signal reaches it between
	# fork and exec: only the test's own shell cleans up.
	[ "$BASHPID" = "$$" ] || exit "$rc"
	for name in "${!PID[@]}"; do
		pid=${PID[$name]}
		[ -n "$pid" ] || continue
		if alive "$pid"; then
			kill -9 "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		else
			wait "$pid" 2>/dev/null
			explain_status "$name" $?
		fi
	done
	for pid in "${EXTRA_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		fi
	done
	if [ "$rc" -ne 0 ]; then
		dump_logs
	fi
	for hook in "${EXIT_HOOKS[@]}"; do
		eval "$hook"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "$TEST_NAME: scratch directory kept: $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- ports, keys, configurations ----

# The daemons run sandboxed as in production: seccomp allow-list (a call
# outside it kills the daemon, which fails the test), Landlock, no new
# privileges. Tests run as root, hence allow_root. SECCOMP=log lets a
# developer list missing system calls (dmesg: "type=1326 ... syscall=N")
# without the daemons dying.
SECCOMP=${SECCOMP:-yes}

# A free UDP port on loopback (bound to port 0 by the kernel, then released).
free_udp_port() {
	python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# gen_keys NAME: $T/keys/NAME.key and $T/keys/NAME.pub
gen_keys() {
	mkdir -p "$T/keys"
	"$BIN/diode-keygen" "$T/keys/$1" >/dev/null
}

# write_conf FILE section.key=value ...: an INI file; later assignments
# override earlier ones, an empty value removes the key.
write_conf() {
	local file=$1
	shift
	python3 - "$file" "$@" <<'PY'
import sys
path, sections, order = sys.argv[1], {}, []
for arg in sys.argv[2:]:
    name, value = arg.split("=", 1)
    section, key = name.rsplit(".", 1)  # keys have no '.', sections may: channel.NAME
    if section not in sections:
        sections[section] = {}
        order.append(section)
    sections[section].pop(key, None)
    if value != "":
        sections[section][key] = value
with open(path, "w", encoding="utf-8") as f:
    for section in order:
        f.write(f"[{section}]\n")
        for key, value in sections[section].items():
            f.write(f"{key} = {value}\n")
PY
}

# make_tx NAME PORT SECRET_KEY_NAME PEER_KEY_NAME [section.key=value ...]
# Sends to 127.0.0.1:PORT; files go $T/NAME/outbox -> $T/NAME/sent.
make_tx() {
	local name=$1 port=$2 key=$3 peer=$4 d=$T/$1
	shift 4
	mkdir -p "$d/outbox" "$d/sent" "$d/state"
	write_conf "$d/conf" \
		"link.destination=127.0.0.1:$port" "link.rate=1G" \
		"keys.secret=$T/keys/$key.key" "keys.peer=$T/keys/$peer.pub" \
		"files.outbox=$d/outbox" "files.sent=$d/sent" "files.settle_ms=500" \
		"state.dir=$d/state" "log.audit=$d/audit.jsonl" \
		"process.allow_root=yes" "process.seccomp=$SECCOMP" "$@"
}

# make_rx NAME PORT SECRET_KEY_NAME PEER_KEY_NAME [section.key=value ...]
# Listens on 127.0.0.1:PORT; delivers into $T/NAME/inbox. RX_WORKERS, when
# set, is its [link] workers (0: staging writes and hashing on the loop
# thread; unset: the default, which depends on the CPU count).
make_rx() {
	local name=$1 port=$2 key=$3 peer=$4 d=$T/$1
	shift 4
	mkdir -p "$d/inbox" "$d/state"
	write_conf "$d/conf" \
		"link.listen=127.0.0.1:$port" "link.workers=${RX_WORKERS:-}" \
		"keys.secret=$T/keys/$key.key" "keys.peer=$T/keys/$peer.pub" \
		"files.inbox=$d/inbox" \
		"state.dir=$d/state" "log.audit=$d/audit.jsonl" \
		"process.allow_root=yes" "process.seccomp=$SECCOMP" "$@"
}

# ---- daemons ----

# start_daemon NAME PROGRAM READY_REGEX: start PROGRAM -c $T/NAME/conf, stderr
# appended to $T/NAME/stderr.log, and wait until a new line of it matches.
start_daemon() {
	local name=$1 prog=$2 ready=$3 d=$T/$1 before
	touch "$d/stderr.log"
	before=$(wc -l < "$d/stderr.log")
	# RUN_IN: a command prefix (e.g. "ip netns exec NS") that execs the daemon.
	${RUN_IN:-} "$BIN/$prog" -c "$d/conf" >>"$d/stdout.log" 2>>"$d/stderr.log" &
	PID[$name]=$!
	if ! wait_for 15 _ready "$name" "$before" "$ready"; then
		fail "$prog ($name) did not become ready ('$ready' not logged)"
	fi
}

_ready() {
	local name=$1 before=$2 ready=$3
	alive "${PID[$name]}" || fail "$name (pid ${PID[$name]}) exited at start-up"
	tail -n "+$((before + 1))" "$T/$name/stderr.log" | grep -Eq -- "$ready"
}

start_rx() { start_daemon "$1" diode-rx 'listening on'; }
start_tx() { start_daemon "$1" diode-tx 'session [0-9]+ started'; }

is_running() {
	local pid=${PID[$1]:-}
	[ -n "$pid" ] && alive "$pid"
}

# stop_daemon NAME [SECONDS]: SIGTERM, wait; returns the exit status (137 and
# a message when it had to be killed).
stop_daemon() {
	local name=$1 limit=${2:-15} pid=${PID[$1]:-} rc=0
	[ -n "$pid" ] || fail "stop_daemon $name: not started"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_for "$limit" _gone "$pid"; then
		echo "$TEST_NAME: $name (pid $pid) still running ${limit}s after SIGTERM; killing it" >&2
		kill -9 "$pid" 2>/dev/null || true
	fi
	wait "$pid" || rc=$?
	PID[$name]=""
	explain_status "$name" "$rc"
	return "$rc"
}

# kill9_daemon NAME: SIGKILL, no chance to clean up.
kill9_daemon() {
	local pid=${PID[$1]}
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	PID[$1]=""
}

# alive PID: the process exists and is not a zombie (an exited child not yet
# waited for still answers kill -0).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

_gone() { ! alive "$1"; }

# ---- waiting and checking ----

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds;
# non-zero when the deadline passes first.
wait_for() {
	local limit=$1 deadline
	shift
	deadline=$(($(date +%s%N) + limit * 1000000000))
	while :; do
		if "$@"; then
			return 0
		fi
		if [ "$(date +%s%N)" -ge "$deadline" ]; then
			return 1
		fi
		sleep 0.1
	done
}

# same_listing SRC DST: every file of SRC is in DST with the same size (a
# cheap "has everything arrived" check; compare_trees does the real work).
same_listing() {
	python3 - "$1" "$2" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
for root, dirs, files in os.walk(src):
    for f in files:
        p = os.path.join(root, f)
        q = os.path.join(dst, os.path.relpath(p, src))
        try:
            if os.lstat(q).st_size != os.lstat(p).st_size:
                sys.exit(1)
        except FileNotFoundError:
            sys.exit(1)
PY
}

# compare_trees SRC DST: every file of SRC is in DST, byte-identical, and DST
# holds nothing else, apart from an empty .diode-staging directory at its top.
compare_trees() {
	python3 - "$1" "$2" <<'PY'
import filecmp, os, stat, sys
src, dst = sys.argv[1], sys.argv[2]
problems = []

def walk(top):
    files, dirs, other = set(), set(), set()
    for root, dnames, fnames in os.walk(top):
        for n in dnames + fnames:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, top)
            mode = os.lstat(p).st_mode
            if stat.S_ISDIR(mode):
                dirs.add(rel)
            elif stat.S_ISREG(mode):
                files.add(rel)
            else:
                other.add(rel)
    return files, dirs, other

sfiles, sdirs, _ = walk(src)
dfiles, ddirs, dother = walk(dst)
staging = os.path.join(dst, ".diode-staging")
if os.path.lexists(staging):
    if not os.path.isdir(staging) or os.path.islink(staging):
        problems.append(".diode-staging is not a directory")
    else:
        left = os.listdir(staging)
        if left:
            problems.append(f".diode-staging is not empty: {sorted(left)[:10]}")
    ddirs.discard(".diode-staging")
    dfiles = {f for f in dfiles if not f.startswith(".diode-staging/")}
    ddirs = {d for d in ddirs if not d.startswith(".diode-staging/")}
    dother = {o for o in dother if not o.startswith(".diode-staging/")}
for f in sorted(sfiles - dfiles):
    problems.append(f"missing: {f}")
for f in sorted(dfiles - sfiles):
    problems.append(f"extra file: {f}")
for d in sorted(ddirs - sdirs):
    problems.append(f"extra directory: {d}")
for o in sorted(dother):
    problems.append(f"extra non-regular entry: {o}")
for f in sorted(sfiles & dfiles):
    if not filecmp.cmp(os.path.join(src, f), os.path.join(dst, f), shallow=False):
        problems.append(f"content differs: {f}")
if problems:
    print(f"trees differ ({src} vs {dst}): {len(problems)} problems", file=sys.stderr)
    for p in problems[:30]:
        print("  " + p, file=sys.stderr)
    sys.exit(1)
PY
}

# no_files DIR: DIR holds no file (directories may remain).
no_files() {
	[ -z "$(find "$1" -mindepth 1 ! -type d -print -quit)" ]
}

# audit_count FILE EVENT [field=value ...]: number of EVENT records whose
# fields match (values compared as strings; field~text: text is a substring).
audit_count() {
	python3 - "$@" <<'PY'
import json, sys
path, event, conds = sys.argv[1], sys.argv[2], sys.argv[3:]
n = 0
try:
    lines = open(path, encoding="utf-8").read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    e = json.loads(line)
    if e.get("event") != event:
        continue
    ok = True
    for c in conds:
        if "~" in c and ("=" not in c or c.index("~") < c.index("=")):
            k, v = c.split("~", 1)
            ok = ok and v in str(e.get(k, ""))
        else:
            k, v = c.split("=", 1)
            ok = ok and str(e.get(k)) == v
    n += ok
print(n)
PY
}

# audit_valid FILE: every line is a JSON object with an "event".
audit_valid() {
	python3 - "$1" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    try:
        e = json.loads(line)
    except ValueError as ex:
        sys.exit(f"{sys.argv[1]}:{i}: not JSON: {ex}: {line!r}")
    if not isinstance(e, dict) or "event" not in e:
        sys.exit(f"{sys.argv[1]}:{i}: not an audit record: {line!r}")
PY
}

# audit_at_least FILE EVENT N [conds...]: true when the count reaches N.
audit_at_least() {
	local file=$1 event=$2 n=$3
	shift 3
	[ "$(audit_count "$file" "$event" "$@")" -ge "$n" ]
}

# no_sanitizer_reports FILE...: no ASan/UBSan/LSan report in the logs.
no_sanitizer_reports() {
	local f
	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -Eq 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' "$f"; then
			grep -E -A5 'Sanitizer|runtime error:' "$f" | head -n 40 >&2
			return 1
		fi
	done
}

# random_file PATH BYTES
random_file() {
	head -c "$2" /dev/urandom > "$1"
}

# ---- link simulator and loss-test helpers (tests/integration/test_loss_*.sh) ----

# start_linksim NAME LISTEN_PORT FORWARD_PORT [linksim options...]: run
# $BIN/linksim between 127.0.0.1:LISTEN_PORT (diode-tx's destination) and
# 127.0.0.1:FORWARD_PORT (diode-rx's listen port). Its log goes to
# $T/NAME/stderr.log, its statistics to $T/NAME/stats (on exit, and on
# linksim_stat). Stop it with stop_daemon NAME (SIGTERM: it writes the stats).
start_linksim() {
	local name=$1 listen=$2 forward=$3 d=$T/$1 before
	shift 3
	[ -x "$BIN/linksim" ] || fail "$BIN/linksim missing; run 'make $BUILD/linksim' first"
	mkdir -p "$d"
	touch "$d/stderr.log"
	before=$(wc -l < "$d/stderr.log")
	"$BIN/linksim" --listen "127.0.0.1:$listen" --forward "127.0.0.1:$forward" \
		--stats "$d/stats" "$@" >>"$d/stdout.log" 2>>"$d/stderr.log" &
	PID[$name]=$!
	wait_for 10 _ready "$name" "$before" ' -> .*seed' || fail "linksim ($name) did not start"
}

# linksim_stat NAME KEY: one statistic of a linksim (running: fresh numbers
# through SIGUSR1; stopped: those it wrote on exit). Prints 0 when unknown.
linksim_stat() {
	local name=$1 key=$2 f=$T/$1/stats pid=${PID[$1]:-}
	if [ -n "$pid" ] && alive "$pid"; then
		rm -f "$f"
		kill -USR1 "$pid"
		wait_for 5 test -s "$f" || fail "linksim ($name) wrote no statistics on SIGUSR1"
	fi
	awk -F= -v k="$key" '$1 == k { v = $2 } END { print v == "" ? 0 : v }' "$f" 2>/dev/null ||
		echo 0
}

# make_mixed_files DIR COUNT MAX_BYTES SEED: COUNT files of random content in
# DIR (some in subdirectories), sizes from 0 to MAX_BYTES: the edge cases (0,
# 1, one fragment, one Reed-Solomon block of 64 x 1408 bytes, either side of
# them), the rest log-uniform. Deterministic names and sizes for a seed.
make_mixed_files() {
	python3 - "$@" <<'PY'
import os, random, sys
top, count, top_size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
frag, block = 1408, 64 * 1408
edges = [0, 1, frag - 1, frag, frag + 1, block - 1, block, block + 1, 8 * block, 8 * block + 1,
         top_size]
sizes = [s for s in edges if s <= top_size][:count]
while len(sizes) < count:
    sizes.append(min(top_size, int(10 ** rnd.uniform(2, 6.4))))
rnd.shuffle(sizes)
for i, size in enumerate(sizes):
    sub = ("", "a/", "a/b/", "c d/")[i % 4]
    os.makedirs(os.path.join(top, sub), exist_ok=True)
    with open(os.path.join(top, sub, f"f{i:04d}-{size}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY
}

# publish SRC OUTBOX: copy SRC's content aside (same file system as OUTBOX),
# then rename each top-level entry into OUTBOX, as producers should: diode-tx
# takes renamed files and directories at once. Top-level names of SRC must not
# exist in OUTBOX yet.
publish() {
	local src=$1 outbox=$2 stage e
	stage=$(dirname "$outbox")/.publish.$BASHPID
	rm -rf "$stage"
	cp -a "$src" "$stage"
	for e in "$stage"/* "$stage"/.[!.]*; do
		[ -e "$e" ] || continue
		mv -- "$e" "$outbox/"
	done
	rmdir "$stage"
}

# inbox_guard_start INBOX SOURCE...: watch INBOX (not its .diode-staging)
# every 20 ms until inbox_guard_stop: every regular file that ever appears
# there must be byte-identical to one of the files under the SOURCE
# directories (same SHA-256); anything else (a partial, truncated or
# unexpected file, a non-regular entry) is a violation.
inbox_guard_start() {
	local inbox=$1
	shift
	rm -f "$T/guard.stop" "$T/guard.report"
	python3 - "$inbox" "$T/guard.stop" "$T/guard.report" "$@" <<'PY' &
import hashlib, os, stat, sys, time
inbox, stop, report, sources = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

good = set()
for s in sources:
    for root, _, files in os.walk(s):
        for n in files:
            good.add(sha(os.path.join(root, n)))
seen, violations, polls = {}, [], 0
while True:
    last = os.path.exists(stop)
    for root, dirs, files in os.walk(inbox):
        if root == inbox:
            dirs[:] = [d for d in dirs if d != ".diode-staging"]
        for n in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, inbox)
            try:
                st = os.lstat(p)
                key = (rel, st.st_ino, st.st_size, st.st_mtime_ns)
                if key in seen:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    seen[key] = False
                    violations.append(f"{rel}: not a regular file")
                    continue
                h = sha(p)
            except FileNotFoundError:
                continue
            seen[key] = h in good
            if h not in good:
                violations.append(f"{rel}: {st.st_size} bytes, sha256 {h[:16]}... matches no source file")
    polls += 1
    if last:
        break
    time.sleep(0.02)
with open(report + ".tmp", "w") as f:
    f.write(f"polls {polls}\nchecked {len(seen)}\nviolations {len(violations)}\n")
    for v in violations[:50]:
        f.write(v + "\n")
os.rename(report + ".tmp", report)
PY
	GUARD_PID=$!
	EXTRA_PIDS+=("$GUARD_PID")
}

# inbox_guard_stop: end the watch; fails the test on any violation.
inbox_guard_stop() {
	touch "$T/guard.stop"
	wait_for 60 test -e "$T/guard.report" || fail "the inbox guard did not finish"
	wait "$GUARD_PID" 2>/dev/null || true
	log "inbox guard: $(head -n 3 "$T/guard.report" | tr '\n' ' ')"
	if ! grep -q '^violations 0$' "$T/guard.report"; then
		sed -n '4,$p' "$T/guard.report" >&2
		fail "something other than a complete, verified copy of a sent file appeared in the inbox"
	fi
}

# audit_paths FILE EVENT: the path of every EVENT record that has one, one a line.
audit_paths() {
	python3 - "$@" <<'PY'
import json, sys
path, event = sys.argv[1], sys.argv[2]
for line in open(path, encoding="utf-8"):
    e = json.loads(line)
    if e.get("event") == event and "path" in e:
        print(e["path"])
PY
}
