#!/usr/bin/env bash
# [log] syslog: operational lines and audit events reach a local syslog
# socket (a Python listener stands in for the syslog daemon), sandboxed as in
# production.
#   diode-rx in rfc5424, facility local3; diode-tx in rfc3164, facility local4
#   a file through the pair -> rx: file_delivered at local3.notice (PRI 157),
#       MSGID file_delivered, structured data [diode@32473 ... path="..."],
#       the JSON record as message; operational lines at local3.notice and
#       local3.info;
#       tx: file_sent at local4.notice (PRI 165) with its JSON record
#   the syslog daemon restarts (new socket at the same path) -> the next
#       file's events arrive: the daemons connected again
. "$(dirname "$0")/lib.sh"

p_rx=$(free_udp_port)
gen_keys tx
gen_keys rx
SOCK=$T/log.sock
make_rx rx "$p_rx" rx tx "log.syslog=yes" "log.syslog_socket=$SOCK" \
	"log.syslog_facility=local3" "log.syslog_format=rfc5424"
make_tx tx "$p_rx" tx rx "log.syslog=yes" "log.syslog_socket=$SOCK" \
	"log.syslog_facility=local4" "link.rate=50M"

# The stand-in syslog daemon: every datagram as one JSON string per line.
start_syslogd() {
	python3 - "$SOCK" "$T/syslog.txt" <<'PY' &
import json, os, socket, sys
path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", encoding="utf-8") as f:
    print(json.dumps("listening"), file=f, flush=True)
    while True:
        data = s.recv(65536)
        print(json.dumps(data.decode("utf-8", "replace")), file=f, flush=True)
PY
	PID[syslogd]=$!
	wait_for 5 test -S "$SOCK" || fail "the stand-in syslog daemon did not start"
}
stop_syslogd() {
	kill "${PID[syslogd]}"
	wait "${PID[syslogd]}" 2> /dev/null || true
	PID[syslogd]=""
	rm -f "$SOCK"
}
# has REGEX [N]: at least N (default 1) messages match the Python REGEX.
has() {
	python3 - "$T/syslog.txt" "$1" "${2:-1}" <<'PY'
import json, re, sys
msgs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
sys.exit(0 if sum(1 for m in msgs if re.search(sys.argv[2], m)) >= int(sys.argv[3]) else 1)
PY
}
show() { python3 -c 'import json,sys; [print("    " + json.loads(l)) for l in open(sys.argv[1])]' "$T/syslog.txt" | tail -n 20; }

start_syslogd
start_rx rx
start_tx tx
mkdir -p "$T/src"
random_file "$T/src/first file.bin" 100000
publish "$T/src" "$T/tx/outbox"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 1 || fail "file not delivered"
pid_rx=${PID[rx]}
pid_tx=${PID[tx]}
rfc5424='^<157>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ diode-rx '$pid_rx' file_delivered '
rfc5424+='\[diode@32473 id="\d+-1" session="\d+" transfer="1" path="first file\.bin" '
rfc5424+='size="100000" sha256="[0-9a-f]{64}" ms="\d+"\] '
rfc5424+='\{"ts":"[^"]+","program":"diode-rx","event":"file_delivered",.*"path":"first file\.bin".*\}$'
wait_for 5 has "$rfc5424" || { show; fail "rx: no RFC 5424 file_delivered event at local3.notice"; }
has "^<157>1 \S+ \S+ diode-rx $pid_rx - - listening on 127\.0\.0\.1:$p_rx" ||
	{ show; fail "rx: no operational line at local3.notice"; }
has "^<158>1 \S+ \S+ diode-rx $pid_rx - - delivered first file\.bin \(100000 bytes" ||
	{ show; fail "rx: no operational line at local3.info"; }
rfc3164='^<165>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d diode-tx\['$pid_tx'\]: '
rfc3164+='\{"ts":"[^"]+","program":"diode-tx","event":"file_sent",.*"path":"first file\.bin".*\}$'
wait_for 5 has "$rfc3164" || { show; fail "tx: no RFC 3164 file_sent event at local4.notice"; }
has "^<166>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d diode-tx\[$pid_tx\]: sent first file\.bin" ||
	{ show; fail "tx: no operational line at local4.info"; }
log "events and log lines arrive with the right facility, severity and format"
show

# The syslog daemon restarts: the daemons connect again.
stop_syslogd
start_syslogd
mkdir -p "$T/src2"
random_file "$T/src2/second.bin" 5000
publish "$T/src2" "$T/tx/outbox"
wait_for 20 audit_at_least "$T/rx/audit.jsonl" file_delivered 2 || fail "second file not delivered"
wait_for 5 has '^<157>1 .* file_delivered \[diode@32473 .*path="second\.bin"' ||
	{ show; fail "rx: no event after the syslog daemon restarted"; }
wait_for 5 has '^<165>.*"event":"file_sent".*"path":"second\.bin"' ||
	{ show; fail "tx: no event after the syslog daemon restarted"; }
log "after a syslog restart, events arrive again"

stop_daemon tx || fail "diode-tx exited with status $?"
stop_daemon rx || fail "diode-rx exited with status $?"
stop_syslogd
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
