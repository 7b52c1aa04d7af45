#!/usr/bin/env bash
# test_loss_independent with diode-rx's [link] workers = 0: staging writes,
# the in-order SHA-256 and the staging fsync on the event loop thread, as on a
# one-CPU machine. The same 200 files through 5 % loss arrive byte-identical.
export RX_WORKERS=0
. "$(dirname "$0")/test_loss_independent.sh"
grep -q 'staging writes and SHA-256 on the event loop thread' "$T/rx/stderr.log" ||
	fail "diode-rx did not say it writes on the event loop thread with [link] workers = 0"
