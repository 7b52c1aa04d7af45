# Helpers for the stream channel tests (tests/integration/test_channel_*.sh);
# source it after lib.sh.

SIM=$ROOT/scripts/sim-historian

# sink_count DIR: records in the segments of a dir: sink (finished or not).
sink_count() {
	python3 - "$1" <<'PY'
import glob, sys
n = 0
for f in glob.glob(sys.argv[1] + "/*.log") + glob.glob(sys.argv[1] + "/.*.part"):
    with open(f, "rb") as fh:
        n += fh.read().count(b"\n")
print(n)
PY
}

# sink_has DIR N: the sink holds at least N records.
sink_has() {
	[ "$(sink_count "$1")" -ge "$2" ]
}

# check_sink DIR SENT CLIENTS [LOST_OK]: the finished segments of DIR (all of
# them: stop diode-rx first) hold exactly the records of SENT.0 .. SENT.N-1
# (or SENT alone when CLIENTS is 1), byte for byte, each client's in its
# order; segment names sort in stream order and their first seq follows on.
# With LOST_OK=1, records may be missing (checked elsewhere against the
# records_lost reports) but those present keep their order.
check_sink() {
	python3 - "$@" <<'PY'
import os, re, sys
sink, sent, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
lost_ok = len(sys.argv) > 4 and sys.argv[4] == "1"
names = sorted(os.listdir(sink))
problems = []
records = []
prev_next = None
for n in names:
    if not re.fullmatch(r"\d{12}-\d{20}\.log", n):
        problems.append(f"unexpected entry in the sink: {n}")
        continue
    with open(os.path.join(sink, n), "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        problems.append(f"{n}: does not end with a newline")
    recs = data.split(b"\n")[:-1]
    first = int(n.split("-")[1].split(".")[0])
    if prev_next is not None and first < prev_next:
        problems.append(f"{n}: first seq {first} overlaps the previous segment (ends {prev_next})")
    if prev_next is not None and first != prev_next and not lost_ok:
        problems.append(f"{n}: first seq {first}, expected {prev_next}")
    prev_next = first + len(recs)
    records += recs
want = {}
for c in range(clients):
    with open(sent if clients == 1 else f"{sent}.{c}", "rb") as f:
        want[c] = f.read().split(b"\n")[:-1]
total = sum(len(v) for v in want.values())
got = {c: [] for c in range(clients)}
for r in records:
    m = re.match(rb"[0-9.]+,[A-Z0-9]+\.C(\d\d)\.", r)
    if not m or int(m.group(1)) not in got:
        problems.append(f"not a record of ours: {r[:60]!r}")
        continue
    got[int(m.group(1))].append(r)
if lost_ok:
    for c in range(clients):
        pos = {r: i for i, r in enumerate(want[c])}
        idx = [pos.get(r, -1) for r in got[c]]
        if -1 in idx:
            problems.append(f"client {c}: a record that was not sent")
        if idx != sorted(set(idx)):
            problems.append(f"client {c}: records out of order or repeated")
else:
    if len(records) != total:
        problems.append(f"{len(records)} records delivered, {total} sent")
    for c in range(clients):
        if got[c] != want[c]:
            problems.append(f"client {c}: {len(got[c])} records, {len(want[c])} sent; "
                            f"identical and in order: {got[c] == want[c]}")
if problems:
    print("\n".join(problems[:20]), file=sys.stderr)
    sys.exit(1)
print(f"{len(records)} records in {len(names)} segments" +
      ("" if lost_ok else ": complete, byte-exact, each client's in order"))
PY
}

# A free TCP port on loopback.
free_tcp_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# sink_contains DIR LINE: one of the segments of DIR (finished or not) holds LINE.
sink_contains() {
	find "$1" -maxdepth 1 -type f \( -name '*.log' -o -name '.*.part' \) -print0 |
		xargs -0 -r grep -qxF -- "$2"
}
