#!/usr/bin/env bash
# One diode-rx under attack while a legitimate diode-tx sends a few files:
#  - a second diode-tx with a key pair the receiver does not trust (its peer is
#    the receiver's real public key) sends its own outbox to the same port;
#  - a garbage sender floods random datagrams, some with a plausible header;
#  - every datagram of the legitimate sender is recorded on its way (through a
#    forwarder) and replayed later, once after the transfer and once more after
#    diode-rx restarted.
# Only the legitimate files may arrive, each exactly once and byte-identical;
# diode-rx must survive, report the rejected datagrams (auth_failures), and
# its stderr must hold no sanitizer report.
. "$(dirname "$0")/lib.sh"

rx_port=$(free_udp_port)
gen_keys tx
gen_keys rx
gen_keys evil
make_rx rx "$rx_port" rx tx
src=$T/src
mkdir -p "$src" "$T/stage"

# ---- helpers in python ----
cat > "$T/forwarder.py" <<'PY'
# forwarder.py PORTFILE DEST_PORT CAPTURE: forward datagrams from an ephemeral
# loopback port to DEST_PORT, recording each one (4-byte length + bytes).
import signal, socket, struct, sys
portfile, dest, capture = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rec = open(capture, "wb")
def stop(*_):
    rec.close()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
import os
os.rename(portfile + ".tmp", portfile)
while True:
    data = s.recv(70000)
    rec.write(struct.pack(">I", len(data)) + data)
    rec.flush()
    try:
        out.sendto(data, ("127.0.0.1", dest))
    except OSError:
        pass
PY
cat > "$T/garbage.py" <<'PY'
# garbage.py PORT SECONDS: random datagrams, some with a plausible header.
import os, random, socket, struct, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    for _ in range(100):
        kind = random.randrange(8)
        if kind == 0:
            size = random.randint(0, 2000)
        elif kind == 1:
            size = 1472
        elif kind == 2:
            size = 160
        else:
            size = random.choice([160, 1472, 1152, 1216, random.randint(32, 2000)])
        body = bytearray(os.urandom(size))
        if kind >= 3 and size >= 16:
            # version 1, type announce (1) or sealed (2), then epoch, session, seq
            body[0] = 1
            body[1] = random.choice([1, 2, 1, 2, 0, 3, 255])
            struct.pack_into(">HIQ", body, 2, random.choice([0, 0, 1, 65535]),
                             random.choice([0, 1, int(time.time()), int(time.time()) + 5,
                                            0xFFFFFFFF, random.getrandbits(32)]),
                             random.choice([0, 1, 2, random.getrandbits(64), 2**64 - 1]))
        try:
            s.sendto(bytes(body), ("127.0.0.1", port))
        except OSError:
            pass
        n += 1
    time.sleep(0.01)
print(f"sent {n} garbage datagrams")
PY
cat > "$T/replay.py" <<'PY'
# replay.py CAPTURE PORT: send every recorded datagram again, in order.
import socket, struct, sys, time
capture, port = sys.argv[1], int(sys.argv[2])
data = open(capture, "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
off = n = 0
while off < len(data):
    (length,) = struct.unpack_from(">I", data, off)
    s.sendto(data[off + 4:off + 4 + length], ("127.0.0.1", port))
    off += 4 + length
    n += 1
    if n % 200 == 0:
        time.sleep(0.005)
print(f"replayed {n} datagrams")
PY

# ---- the legitimate files ----
random_file "$src/report-1MiB.bin" $((1024 * 1024))
random_file "$src/dump-3MiB.bin" $((3 * 1024 * 1024 + 17))
echo "hello from the OT side" > "$src/hello.txt"
: > "$src/empty.txt"
mkdir -p "$src/sub"
random_file "$src/sub/block-sized.bin" 90112

start_rx rx

# The forwarder in front of diode-rx, for the legitimate sender only.
python3 "$T/forwarder.py" "$T/fwd.port" "$rx_port" "$T/capture.bin" 2>"$T/forwarder.log" &
fwd_pid=$!
EXTRA_PIDS+=("$fwd_pid")
wait_for 10 test -s "$T/fwd.port" || fail "the forwarder did not start"
fwd_port=$(cat "$T/fwd.port")
make_tx tx "$fwd_port" tx rx "link.rate=50M"

# The foreign sender: its own key pair, the receiver's real public key.
make_tx evil "$rx_port" evil rx "link.rate=50M"
for i in 1 2 3; do
	random_file "$T/evil/outbox/evil-$i.bin" $((200000 * i))
done
echo "you should never see this" > "$T/evil/outbox/hello.txt"
mkdir -p "$T/evil/outbox/sub"
echo "nor this" > "$T/evil/outbox/sub/evil.txt"
nevil=$(find "$T/evil/outbox" -type f | wc -l)

log "starting the garbage sender, the foreign sender and the legitimate sender"
python3 "$T/garbage.py" "$rx_port" 6 >"$T/garbage.log" 2>&1 &
garbage_pid=$!
EXTRA_PIDS+=("$garbage_pid")
start_tx evil
start_tx tx
cp -a "$src/." "$T/stage/"
for f in "$T"/stage/*; do mv -- "$f" "$T/tx/outbox/"; done

nlegit=$(find "$src" -type f | wc -l)
wait_for 45 same_listing "$src" "$T/rx/inbox" || fail "the legitimate files did not all arrive"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered "$nlegit" || fail "fewer than $nlegit file_delivered"
wait_for 20 audit_at_least "$T/evil/audit.jsonl" file_sent "$nevil" ||
	fail "the foreign sender did not get to send its files"
wait "$garbage_pid" || fail "the garbage sender failed: $(cat "$T/garbage.log")"
log "$(cat "$T/garbage.log")"
wait_for 20 no_files "$T/tx/outbox" || fail "the legitimate outbox did not empty"
sleep 3 # a late delivery of something foreign would show up now
is_running rx || fail "diode-rx died under attack"
compare_trees "$src" "$T/rx/inbox" || fail "the inbox is not exactly the legitimate files"

stop_daemon tx || fail "legitimate diode-tx exited with status $? on SIGTERM"
stop_daemon evil || fail "foreign diode-tx exited with status $? on SIGTERM"
sleep 0.3
kill -TERM "$fwd_pid"
wait "$fwd_pid" || true
ncap=$(python3 -c 'import os, sys; print(os.path.getsize(sys.argv[1]))' "$T/capture.bin")
[ "$ncap" -gt 100000 ] || fail "the forwarder recorded only $ncap bytes"
delivered=$(audit_count "$T/rx/audit.jsonl" file_delivered)

log "replaying the recorded datagrams to the running diode-rx"
python3 "$T/replay.py" "$T/capture.bin" "$rx_port" > "$T/replay.log"
log "$(cat "$T/replay.log")"
sleep 3 # past the receiver's grace periods
is_running rx || fail "diode-rx died during the replay"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = "$delivered" ] || fail "the replay delivered something"
compare_trees "$src" "$T/rx/inbox" || fail "the replay changed the inbox"

log "restarting diode-rx and replaying again"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
mv "$T/rx/stderr.log" "$T/rx/stderr-1.log"
start_rx rx
python3 "$T/replay.py" "$T/capture.bin" "$rx_port" > "$T/replay.log"
log "$(cat "$T/replay.log")"
python3 "$T/garbage.py" "$rx_port" 1 >"$T/garbage.log" 2>&1
sleep 3
is_running rx || fail "diode-rx died during the replay after its restart"
[ "$(audit_count "$T/rx/audit.jsonl" file_delivered)" = "$delivered" ] ||
	fail "the replay after a restart delivered something"
[ "$(audit_count "$T/rx/audit.jsonl" session_started)" = 1 ] ||
	fail "a replayed or foreign announce started a session: $(grep session_started "$T/rx/audit.jsonl")"
compare_trees "$src" "$T/rx/inbox" || fail "the replay after a restart changed the inbox"

log "checking the audit logs"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
python3 - "$T/rx/audit.jsonl" "$src" <<'PY' || fail "rx audit log does not match"
import collections, hashlib, json, os, sys
events = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
src = sys.argv[2]
want = {}
for root, _, files in os.walk(src):
    for f in files:
        p = os.path.join(root, f)
        want[os.path.relpath(p, src)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
got = collections.Counter()
problems = []
for e in events:
    if e["event"] == "file_delivered":
        got[e["path"]] += 1
        if want.get(e["path"]) != e.get("sha256"):
            problems.append(f"delivered {e['path']!r} with sha256 {e.get('sha256')}")
        if "delivered_as" in e:
            problems.append(f"{e['path']!r} delivered as {e['delivered_as']!r}")
for p in want:
    if got[p] != 1:
        problems.append(f"{p!r} delivered {got[p]} times")
failures = [e for e in events if e["event"] == "auth_failures"]
if not failures:
    problems.append("no auth_failures record")
else:
    total = collections.Counter()
    for e in failures:
        for k, v in e.items():
            if isinstance(v, int):
                total[k] += v
    print("rejected datagrams reported:", dict(total))
    if total["unknown_sender"] == 0:
        problems.append("the foreign sender's announces were not reported as unknown_sender")
for e in events:
    if e["event"] in ("file_failed", "file_rejected", "file_aborted"):
        print("note:", e)
if problems:
    sys.exit("\n".join(problems))
PY
no_sanitizer_reports "$T/rx/stderr-1.log" "$T/rx/stderr.log" "$T/tx/stderr.log" "$T/evil/stderr.log" ||
	fail "sanitizer report in the daemon logs"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM at the end"
no_sanitizer_reports "$T/rx/stderr.log" || fail "sanitizer report from diode-rx at exit"
log "ok"
