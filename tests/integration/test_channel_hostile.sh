#!/usr/bin/env bash
# Misbehaving producers cost only their own connection: an endless line, binary
# garbage, silent half-open connections, a storm of connections, oversized
# and multi-line UDP datagrams. Meanwhile a well-behaved producer's records all
# arrive, in order, and both daemons keep running.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

port=$(free_udp_port)
in_port=$(free_tcp_port)
udp_port=$(free_udp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/sink"
make_rx rx "$port" rx tx "channel.hist.sink=dir:$T/sink"
make_tx tx "$port" tx rx "channel.hist.max_record=1K" "channel.hist.max_clients=16" \
	"channel.hist.listen=tcp://127.0.0.1:$in_port, udp://127.0.0.1:$udp_port"
start_rx rx
start_tx tx

log "hostile producers start"
python3 - "$in_port" "$udp_port" "$T/hostile.done" <<'PY' &
import os, socket, sys, time
tcp, udp, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
idle = [socket.create_connection(("127.0.0.1", tcp)) for _ in range(5)]   # half-open, silent
endless = socket.create_connection(("127.0.0.1", tcp))
garbage = socket.create_connection(("127.0.0.1", tcp))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(200):
    endless.sendall(b"x" * 50000)                       # a line that never ends: 10 MB
    garbage.sendall(os.urandom(5000))                   # binary garbage, random newlines
    u.sendto(b"y" * 2000, ("127.0.0.1", udp))           # over max_record
    u.sendto(b"two\nlines", ("127.0.0.1", udp))         # a newline inside
    for _ in range(2):                                  # connections opened and dropped
        s = socket.create_connection(("127.0.0.1", tcp))
        s.close()
    time.sleep(0.005)
open(done, "w").close()
time.sleep(3)                                           # the idle ones stay a while
PY
hostile=$!
EXTRA_PIDS+=("$hostile")
log "a well-behaved producer sends 2000 records meanwhile"
"$SIM" send "tcp://127.0.0.1:$in_port" --client-base 7 --prefix GOOD --count 2000 --rate 1000 \
	--numbered --copy "$T/good" 2> "$T/sim.log"
wait_for 30 test -e "$T/hostile.done" || fail "the hostile producers did not finish"
wait_for 30 sink_contains "$T/sink" "$(tail -n 1 "$T/good")" || fail "the good records did not arrive"
wait "$hostile" || true
is_running tx || fail "diode-tx died"
is_running rx || fail "diode-rx died"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"
cat "$T"/sink/*.log | grep -a '^[0-9.]*,GOOD\.C07\.' > "$T/good.got" || true
cmp -s "$T/good" "$T/good.got" || fail "the well-behaved producer's records differ ($(wc -l < "$T/good.got") of 2000)"
refused=$(python3 -c 'import json, sys
print(sum(e.get("count", 0) for e in map(json.loads, open(sys.argv[1])) if e["event"] == "records_refused"))' "$T/tx/audit.jsonl")
[ "$refused" -ge 401 ] || fail "only $refused records refused (the endless line, 200 oversized and 200 multi-line datagrams)"
log "$refused records refused; the good producer's 2000 arrived in order"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
