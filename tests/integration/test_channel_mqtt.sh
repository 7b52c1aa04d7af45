#!/usr/bin/env bash
# MQTT bridge: messages published on an OT-side Mosquitto broker cross the
# diode (listen = mqtt://) and are republished on an IT-side broker (sink =
# mqtt://) with their topic (plus a prefix), payload and retain flag, in
# order per topic and none lost: while the IT broker is down when diode-rx
# starts, across a restart of the IT broker in the middle, and across a
# restart of diode-tx (its session on the OT broker keeps what is published
# meanwhile). Duplicates are
# allowed (at least once, docs/OPERATIONS.md "MQTT bridge") and counted.
# A second channel delivers MQTT records to a dir: sink as text lines
# (records = mqtt); a third, fed by TCP, refuses its records at an mqtt://
# sink (not MQTT records), with a count; a fourth publishes a message larger
# than the IT broker's message_size_limit: refused by the broker, reported,
# not retried.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/channel_lib.sh"

command -v mosquitto >/dev/null || { log "mosquitto not installed; skipped"; exit 0; }

port=$(free_udp_port)
ot_port=$(free_tcp_port)
it_port=$(free_tcp_port)
raw_port=$(free_tcp_port)
gen_keys tx
gen_keys rx
mkdir -p "$T/ot" "$T/it" "$T/lines"

# The OT broker wants a user name and password (mqtt_password_file).
OTAUTH=(-u bridge -P 'ot secret')
mosquitto_passwd -c -b "$T/ot/passwd" bridge 'ot secret' 2> /dev/null
printf 'ot secret\n' > "$T/ot-password"
chmod 600 "$T/ot-password"

# broker_conf NAME PORT: a broker on loopback, state in $T/NAME; the OT one
# with passwords.
broker_conf() {
	cat > "$T/$1/mosquitto.conf" <<CONF
listener $2 127.0.0.1
CONF
	if [ "$1" = ot ]; then
		printf 'allow_anonymous false\npassword_file %s\n' "$T/ot/passwd" >> "$T/$1/mosquitto.conf"
	else # the IT broker refuses (PUBACK 0x95) messages over 64 bytes
		printf 'allow_anonymous true\nmessage_size_limit 64\n' >> "$T/$1/mosquitto.conf"
	fi
	cat >> "$T/$1/mosquitto.conf" <<CONF
persistence true
persistence_location $T/$1/
autosave_interval 1
max_queued_messages 100000
log_dest file $T/$1/mosquitto.log
log_type all
CONF
	[ "$(id -u)" = 0 ] && echo "user root" >> "$T/$1/mosquitto.conf"
	return 0
}
declare -A BROKER=()
start_broker() {
	mosquitto -c "$T/$1/mosquitto.conf" 2>> "$T/$1/stderr.log" &
	BROKER[$1]=$!
	EXTRA_PIDS+=("${BROKER[$1]}")
	wait_for 10 mosquitto_sub -h 127.0.0.1 -p "$2" "${@:3}" -t '$SYS/broker/version' -C 1 -W 1 \
		>/dev/null 2>&1 || fail "broker $1 did not start"
}
stop_broker() {
	kill -TERM "${BROKER[$1]}"
	wait "${BROKER[$1]}" || true
}
broker_conf ot "$ot_port"
broker_conf it "$it_port"

make_rx rx "$port" rx tx \
	"channel.plant.sink=mqtt://127.0.0.1:$it_port" "channel.plant.mqtt_topic_prefix=ot/" \
	"channel.plant.buffer=1M" \
	"channel.lines.sink=dir:$T/lines" "channel.lines.records=mqtt" "channel.lines.segment_ms=200" \
	"channel.raw.sink=mqtt://127.0.0.1:$it_port" "channel.raw.mqtt_topic_prefix=raw/" \
	"channel.denied.sink=mqtt://127.0.0.1:$it_port" "channel.denied.mqtt_topic_prefix=denied/"
make_tx tx "$port" tx rx \
	"channel.plant.listen=mqtt://127.0.0.1:$ot_port/plant/#" \
	"channel.plant.mqtt_username=bridge" "channel.plant.mqtt_password_file=$T/ot-password" \
	"channel.lines.listen=mqtt://127.0.0.1:$ot_port/line/+" \
	"channel.lines.mqtt_username=bridge" "channel.lines.mqtt_password_file=$T/ot-password" \
	"channel.raw.listen=tcp://127.0.0.1:$raw_port" \
	"channel.denied.listen=mqtt://127.0.0.1:$ot_port/deny/+" \
	"channel.denied.mqtt_username=bridge" "channel.denied.mqtt_password_file=$T/ot-password"

# The IT-side subscriber: a persistent session (kept across the broker's
# restart), MQTT v5 with the retain flag as published.
start_broker it "$it_port"
sub() {
	mosquitto_sub -h 127.0.0.1 -p "$it_port" -V 5 -c -x 3600 -i it-reader -q 1 \
		--retain-as-published -t 'ot/#' -F '%r|%t|%p' "$@"
}
sub -E > /dev/null || fail "cannot subscribe on the IT broker"
sub >> "$T/got" 2> "$T/sub.log" &
EXTRA_PIDS+=("$!")
stop_broker it

start_broker ot "$ot_port" "${OTAUTH[@]}"
start_rx rx
start_tx tx
for c in plant lines denied; do
	wait_for 10 grep -q "Sending SUBACK to diode-tx-$c" "$T/ot/mosquitto.log" ||
		fail "diode-tx did not subscribe on the OT broker ($c)"
done

# pub_batch FROM TO: messages FROM..TO-1 on four topics, QoS 1 (one publisher
# per topic keeps each topic's order); every 100th on plant/state is retained.
pub_batch() {
	local t
	for t in a b c; do
		seq "$1" $(($2 - 1)) | sed "s|^|$t-|" |
			mosquitto_pub -h 127.0.0.1 -p "$ot_port" "${OTAUTH[@]}" -q 1 -t "plant/$t" -l
		seq "$1" $(($2 - 1)) | sed "s|^|$t-|" >> "$T/sent.$t"
	done
	for i in $(seq "$1" 100 $(($2 - 1))); do
		mosquitto_pub -h 127.0.0.1 -p "$ot_port" "${OTAUTH[@]}" -q 1 -r -t plant/state -m "state-$i"
		echo "state-$i" >> "$T/sent.state"
	done
}
got() { [ -f "$T/got" ] && sort -u "$T/got" | wc -l || echo 0; }
got_at_least() { [ "$(got)" -ge "$1" ]; }

log "phase 1: 1200 messages while the IT broker is down"
pub_batch 0 400
wait_for 10 audit_at_least "$T/rx/audit.jsonl" sink_down 1 || fail "no sink_down event"
sleep 1
start_broker it "$it_port"
wait_for 15 got_at_least 1204 || fail "only $(got) of 1204 messages after the IT broker came up"

log "phase 2: 1200 more, the IT broker restarts in the middle"
pub_batch 400 600
stop_broker it
pub_batch 600 800
sleep 0.5
start_broker it "$it_port"
wait_for 20 got_at_least 2408 || fail "only $(got) of 2408 messages arrived"

log "phase 3: diode-tx restarts; what is published meanwhile waits in its session on the OT broker"
stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
pub_batch 800 900
start_tx tx
wait_for 20 got_at_least 2709 || fail "only $(got) of 2709 messages arrived"
sleep 1 # late duplicates

log "text lines and refused records"
printf 'hello\n' | mosquitto_pub -h 127.0.0.1 -p "$ot_port" "${OTAUTH[@]}" -q 1 -r -t line/x -l
printf '\x00\x01bin\n' > "$T/bin"
mosquitto_pub -h 127.0.0.1 -p "$ot_port" "${OTAUTH[@]}" -q 1 -t line/y -f "$T/bin"
printf 'not mqtt\nneither\n' | python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
s.close()' "$raw_port"
wait_for 10 sink_has "$T/lines" 2 || fail "the dir: sink of MQTT records got no lines"
mosquitto_pub -h 127.0.0.1 -p "$ot_port" "${OTAUTH[@]}" -q 1 -t deny/x -m "$(printf 'x%.0s' {1..100})"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" records_dropped 1 channel=raw ||
	fail "non-MQTT records at an mqtt:// sink were not reported"
wait_for 10 audit_at_least "$T/rx/audit.jsonl" records_dropped 1 channel=denied ||
	fail "a message the IT broker refused was not reported"

log "retained message on the IT broker, read after the fact"
retained=$(mosquitto_sub -h 127.0.0.1 -p "$it_port" -t ot/plant/state -C 1 -W 5 -F '%r|%t|%p')
[ "$retained" = "1|ot/plant/state|state-800" ] || fail "retained message on the IT broker: '$retained'"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"

python3 - "$T" <<'PY' || fail "messages lost, altered or out of order"
import sys
t = sys.argv[1]
got = {}
for line in open(f"{t}/got", "rb").read().split(b"\n")[:-1]:
    r, topic, payload = line.split(b"|", 2)
    got.setdefault(topic.decode(), []).append((r, payload.decode()))
problems, dups = [], 0
for name in ("a", "b", "c", "state"):
    want = open(f"{t}/sent.{name}").read().split()
    have = got.get(f"ot/plant/{name}", [])
    seen, firsts = set(), []
    for r, p in have:
        if p in seen:
            dups += 1
            continue
        seen.add(p)
        firsts.append(p)
        if r != (b"1" if name == "state" else b"0"):
            problems.append(f"ot/plant/{name} {p}: retain flag {r}")
    if firsts != want:
        missing = sorted(set(want) - set(firsts))
        problems.append(f"ot/plant/{name}: {len(firsts)} distinct of {len(want)}, "
                        f"missing {missing[:5]}, in order: {firsts == [w for w in want if w in seen]}")
extra = set(got) - {f"ot/plant/{n}" for n in ("a", "b", "c", "state")}
if extra:
    problems.append(f"unexpected topics: {sorted(extra)}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
total = sum(len(v) for v in got.values())
print(f"{total - dups} messages, each topic complete and in order, retain flags kept; "
      f"{dups} duplicates after the restart")
PY

lines=$(cat "$T"/lines/*.log)
printf '%s\n' "$lines" | grep -qxF "$(printf 'line/x\t1\taGVsbG8=')" || fail "line of line/x: $lines"
printf '%s\n' "$lines" | grep -qxF "$(printf 'line/y\t0\tAAFiaW4K')" || fail "line of line/y: $lines"
python3 - "$T/rx/audit.jsonl" <<'PY' || fail "refused records not audited as such"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
d = [e for e in ev if e.get("event") == "records_dropped" and e.get("channel") == "raw"]
assert sum(e["count"] for e in d) == 2 and "not an MQTT record" in d[0]["reason"], d
d = [e for e in ev if e.get("event") == "records_dropped" and e.get("channel") == "denied"]
assert sum(e["count"] for e in d) == 1 and "refused" in d[0]["reason"], d
assert not [e for e in ev if e.get("event") == "records_dropped"
            and e.get("channel") not in ("raw", "denied")]
PY
[ "$(audit_count "$T/rx/audit.jsonl" records_lost)" = 0 ] || fail "records reported lost"
audit_at_least "$T/rx/audit.jsonl" sink_up 2 || fail "fewer than two sink_up events"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
stop_broker ot
log "ok"
