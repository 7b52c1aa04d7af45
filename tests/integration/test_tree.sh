#!/usr/bin/env bash
# A whole tree crosses: empty and one-byte files, sizes around fragment and
# block boundaries, a 64 MiB random file, deep directories, awkward names and
# a few hundred small files; some renamed into the outbox, some copied in
# place. Everything must arrive byte-identical exactly once, the outbox must
# empty into the sent directory, and both audit logs must agree.
. "$(dirname "$0")/lib.sh"

FRAG=1408            # fragment payload with the default datagram_size 1472
BLOCK=$((64 * FRAG)) # 64 data fragments per block: 90112 bytes

port=$(free_udp_port)
gen_keys tx
gen_keys rx
make_rx rx "$port" rx tx
make_tx tx "$port" tx rx "link.rate=2G" "files.settle_ms=500"
src=$T/src         # the reference copy
stage=$T/stage     # same file system as the outbox, for renames
outbox=$T/tx/outbox
mkdir -p "$src" "$stage"

log "building the source tree in $src"
: > "$src/empty"
printf 'x' > "$src/one-byte"
mkdir -p "$src/boundaries"
for size in $((FRAG - 1)) $FRAG $((FRAG + 1)) $((BLOCK - 1)) $BLOCK $((BLOCK + 1)) \
	$((8 * BLOCK)) $((8 * BLOCK + 1)); do
	random_file "$src/boundaries/size-$size.bin" "$size"
done
mkdir -p "$src/big"
random_file "$src/big/random-64MiB.bin" $((64 * 1024 * 1024))
mkdir -p "$src/deep/a/b/c/d/e"
echo "five levels down" > "$src/deep/a/b/c/d/e/leaf.txt"
echo "level two" > "$src/deep/a/b/mid.txt"
mkdir -p "$src/names/with spaces" "$src/names/日本"
echo "spaces" > "$src/names/with spaces/a file with spaces.txt"
echo "umlaut" > "$src/names/über-grüße ü.txt"
echo "japanese" > "$src/names/日本/日本語のファイル.txt"
echo "emoji" > "$src/names/rocket-🚀-party-🎉.txt"
echo "dash" > "$src/names/-starts-with-dash.txt"
random_file "$src/names/-n" 3
python3 - "$src/many" <<'PY'
import os, random, sys
top = sys.argv[1]
for i in range(300):
    d = os.path.join(top, f"d{i % 7}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file-{i:03d}.dat"), "wb") as f:
        f.write(os.urandom(random.randint(0, 20000)))
PY
nfiles=$(find "$src" -type f | wc -l)
log "$nfiles files, $(du -sm "$src" | cut -f1) MiB"

start_rx rx
start_tx tx

log "dropping files into the outbox"
# Copied in place (taken once unchanged for settle_ms).
cp -- "$src/empty" "$src/one-byte" "$outbox/"
mkdir "$outbox/boundaries"
cp -- "$src"/boundaries/* "$outbox/boundaries/"
# Written under a hidden name inside the outbox, then renamed.
mkdir "$outbox/big"
cp -- "$src/big/random-64MiB.bin" "$outbox/big/.random-64MiB.bin"
mv -- "$outbox/big/.random-64MiB.bin" "$outbox/big/random-64MiB.bin"
# Whole directories prepared outside and moved in.
cp -a -- "$src/deep" "$stage/deep"
mv -- "$stage/deep" "$outbox/deep"
cp -a -- "$src/many" "$stage/many"
mv -- "$stage/many" "$outbox/many"
# Awkward names: a mix of renamed files and files copied in place.
mkdir -p "$outbox/names/with spaces" "$outbox/names/日本"
cp -- "$src/names/with spaces/a file with spaces.txt" "$outbox/names/with spaces/"
cp -- "$src/names/über-grüße ü.txt" "$stage/x.tmp"
mv -- "$stage/x.tmp" "$outbox/names/über-grüße ü.txt"
cp -- "$src/names/日本/日本語のファイル.txt" "$outbox/names/日本/.hidden"
mv -- "$outbox/names/日本/.hidden" "$outbox/names/日本/日本語のファイル.txt"
cp -- "$src/names/rocket-🚀-party-🎉.txt" "$outbox/names/"
cp -- "$src/names/-starts-with-dash.txt" "$stage/dash"
mv -- "$stage/dash" "$outbox/names/-starts-with-dash.txt"
cp -- "$src/names/-n" "$outbox/names/-n"

log "waiting for delivery"
if ! wait_for 120 same_listing "$src" "$T/rx/inbox"; then
	fail "not everything arrived within 120 s ($(find "$T/rx/inbox" -type f | wc -l) of $nfiles files in the inbox)"
fi
if ! wait_for 30 audit_at_least "$T/rx/audit.jsonl" file_delivered "$nfiles"; then
	fail "fewer than $nfiles file_delivered records"
fi
# The sender retires a file when its last datagram leaves; give it a moment.
if ! wait_for 30 no_files "$outbox"; then
	fail "files left in the outbox: $(cd "$outbox" && find . ! -type d | head -n 5)"
fi
sleep 2 # late duplicates or stray deliveries would show up now

log "checking the inbox and the sent directory"
compare_trees "$src" "$T/rx/inbox" || fail "inbox differs from the source tree"
compare_trees "$src" "$T/tx/sent" || fail "sent directory differs from the source tree"
no_files "$outbox" || fail "outbox not empty"

stop_daemon tx || fail "diode-tx exited with status $? on SIGTERM"
stop_daemon rx || fail "diode-rx exited with status $? on SIGTERM"

log "checking the audit logs"
audit_valid "$T/tx/audit.jsonl" || fail "tx audit log malformed"
audit_valid "$T/rx/audit.jsonl" || fail "rx audit log malformed"
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$T/src.sha256"
python3 - "$T/src.sha256" "$T/tx/audit.jsonl" "$T/rx/audit.jsonl" <<'PY' || fail "audit logs do not match the source tree"
import collections, json, sys

sums = {}
for line in open(sys.argv[1], encoding="utf-8"):
    digest, name = line.rstrip("\n").split("  ", 1)
    sums[name[2:] if name.startswith("./") else name] = digest

def events(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]

tx, rx = events(sys.argv[2]), events(sys.argv[3])
problems = []
sent = collections.defaultdict(list)
for e in tx:
    if e["event"] == "file_sent":
        sent[e["path"]].append(e)
delivered = collections.defaultdict(list)
for e in rx:
    if e["event"] == "file_delivered":
        delivered[e["path"]].append(e)
for name, digest in sorted(sums.items()):
    s, d = sent.get(name, []), delivered.get(name, [])
    if len(s) != 1:
        problems.append(f"{name}: {len(s)} file_sent records (expected 1)")
    if len(d) != 1:
        problems.append(f"{name}: {len(d)} file_delivered records (expected 1)")
    if len(s) != 1 or len(d) != 1:
        continue
    s, d = s[0], d[0]
    for key in ("id", "session", "transfer", "path", "size", "sha256"):
        if s.get(key) != d.get(key):
            problems.append(f"{name}: {key} differs: tx {s.get(key)!r}, rx {d.get(key)!r}")
    if s.get("sha256") != digest:
        problems.append(f"{name}: tx sha256 {s.get('sha256')} but sha256sum says {digest}")
    if "delivered_as" in d:
        problems.append(f"{name}: delivered as {d['delivered_as']!r}")
for name in sorted(set(sent) - set(sums)):
    problems.append(f"file_sent for a file not in the tree: {name!r}")
for name in sorted(set(delivered) - set(sums)):
    problems.append(f"file_delivered for a file not in the tree: {name!r}")
for e in rx:
    if e["event"] in ("file_failed", "file_rejected"):
        problems.append(f"rx {e['event']}: {e}")
for e in tx + rx:
    if e["event"] in ("file_abandoned", "file_aborted"):
        print(f"note: {e}", file=sys.stderr)
if problems:
    print(f"{len(problems)} problems:", file=sys.stderr)
    for p in problems[:40]:
        print("  " + p, file=sys.stderr)
    sys.exit(1)
print(f"{len(sums)} files: one file_sent and one matching file_delivered each")
PY
no_sanitizer_reports "$T/tx/stderr.log" "$T/rx/stderr.log" || fail "sanitizer report in the daemon logs"
log "ok"
