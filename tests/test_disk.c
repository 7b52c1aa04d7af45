/* Unit tests for rx/disk.c, the disk thread: hand-over, in-order hashing, hold and read-back, errors, the settle barrier. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../rx/rx.h"

#define FRAG 64
#define K 4
#define BLOCK (K * FRAG)
#define POOL 16 /* the disk thread then owns at most 8 slots and holds at most 2 */

static struct rx rx;
static unsigned after_disk_calls;

/* The reassembler's part (reassembly.c), reduced to what the tests look at. */
void
reasm_after_disk(struct rx *r, struct rx_transfer *t)
{
	(void)r;
	(void)t;
	after_disk_calls++;
}

static int
setup(void **state)
{
	memset(&rx, 0, sizeof(rx));
	rx.loop = uv_default_loop();
	rx.frag_len = FRAG;
	rx.set.block_pool = POOL;
	rx.set.max_transfers = 2;
	rx.set.workers = 1;
	rx.pool = calloc(POOL, sizeof(*rx.pool));
	rx.transfers = calloc(rx.set.max_transfers, sizeof(*rx.transfers));
	assert_non_null(rx.pool);
	assert_non_null(rx.transfers);
	for (unsigned i = 0; i < POOL; i++) {
		rx.pool[i].buf = malloc(BLOCK);
		rx.pool[i].cap = BLOCK;
		assert_non_null(rx.pool[i].buf);
	}
	after_disk_calls = 0;
	disk_start(&rx);
	assert_non_null(rx.disk);
	return 0;
}

static int
teardown(void **state)
{
	disk_stop(&rx);
	assert_null(rx.disk);
	uv_run(rx.loop, UV_RUN_NOWAIT); /* closes the wake-up handle, frees the rest */
	for (unsigned i = 0; i < rx.set.max_transfers; i++) {
		struct rx_transfer *t = &rx.transfers[i];

		if (t->fd >= 0)
			close(t->fd);
		free(t->done_bits);
		dd_digest_free(t->digest);
	}
	for (unsigned i = 0; i < POOL; i++)
		free(rx.pool[i].buf);
	free(rx.pool);
	free(rx.transfers);
	return 0;
}

/* A transfer of n blocks (the last one short by `short_by` bytes) with its
 * content in *data; its staging file is a fresh temporary file. */
static struct rx_transfer *
new_transfer(unsigned i, uint32_t n, size_t short_by, uint8_t **data, bool read_only)
{
	struct rx_transfer *t = &rx.transfers[i];
	char name[] = "/tmp/test_disk.XXXXXX";
	size_t words = (n + 63) / 64 + 1;
	int fd = mkstemp(name);

	assert_true(fd >= 0);
	if (read_only) {
		close(fd);
		fd = open(name, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
	}
	unlink(name);
	memset(t, 0, sizeof(*t));
	t->used = true;
	t->id = i + 1;
	t->size = (uint64_t)n * BLOCK - short_by;
	t->k_full = K;
	t->blocks = n;
	t->fd = fd;
	t->done_bits = calloc(2 * words, sizeof(uint64_t));
	assert_non_null(t->done_bits);
	t->written_bits = t->done_bits + words;
	assert_int_equal(dd_digest_new(&t->digest), 0);
	*data = malloc(t->size);
	assert_non_null(*data);
	for (uint64_t j = 0; j < t->size; j++)
		(*data)[j] = (uint8_t)(j * 7 + j / 251 + i);
	return t;
}

static struct rx_block *
free_slot(void)
{
	for (unsigned i = 0; i < POOL; i++)
		if (rx.pool[i].t == NULL && !rx.pool[i].disk)
			return &rx.pool[i];
	fail_msg("no free slot: the disk thread kept more than half the pool");
	return NULL;
}

/* What complete_block does with a decoded block when the disk thread runs. */
static struct rx_block *
hand_over(struct rx_transfer *t, uint32_t b, const uint8_t *data)
{
	struct rx_block *blk = free_slot();
	uint64_t off = (uint64_t)b * BLOCK;
	size_t len = t->size - off < BLOCK ? (size_t)(t->size - off) : BLOCK;

	blk->t = t;
	blk->block = b;
	memcpy(blk->buf, data + off, len);
	t->done_bits[b / 64] |= (uint64_t)1 << (b % 64);
	t->blocks_done++;
	disk_submit(&rx, t, blk, off, len);
	return blk;
}

static void
assert_file_is(const struct rx_transfer *t, const uint8_t *data)
{
	uint8_t *back = malloc(t->size + 1);

	assert_non_null(back);
	assert_int_equal(pread(t->fd, back, t->size + 1, 0), (ssize_t)t->size);
	assert_memory_equal(back, data, t->size);
	free(back);
}

static void
assert_digest_is(struct rx_transfer *t, const uint8_t *data)
{
	uint8_t got[DD_DIGEST_LEN], want[DD_DIGEST_LEN];
	struct dd_digest *d;

	assert_int_equal(dd_digest_new(&d), 0);
	dd_digest_update(d, data, t->size);
	dd_digest_final(d, want);
	dd_digest_free(d);
	dd_digest_final(t->digest, got);
	assert_memory_equal(got, want, DD_DIGEST_LEN);
}

static void
test_disk_writes_and_hashes_in_order(void **state)
{
	uint8_t *data;
	struct rx_transfer *t = new_transfer(0, 10, 100, &data, false);

	for (uint32_t b = 0; b < 10; b++)
		hand_over(t, b, data);
	disk_settle(&rx, t);
	assert_int_equal(t->disk_slots, 0);
	assert_int_equal(t->hashed, 10);
	assert_int_equal(t->blocks_done, 10);
	assert_true(t->disk_synced);
	assert_int_equal(t->disk_write_err, 0);
	assert_false(t->disk_read_err);
	for (unsigned i = 0; i < POOL; i++)
		assert_false(rx.pool[i].disk);
	assert_file_is(t, data);
	assert_digest_is(t, data);
	/* The loop hears of it through the async handle, outside the barrier. */
	uv_run(rx.loop, UV_RUN_NOWAIT);
	assert_true(after_disk_calls >= 1);
	assert_false(t->disk_check);
	free(data);
}

/* Reverse order: every block but the last handed over waits for an earlier
 * one; at most 2 wait in memory, the others are read back from disk; the
 * loop waits for the thread when it owns half the pool. */
static void
test_disk_hashes_out_of_order_through_hold_and_read_back(void **state)
{
	uint8_t *data;
	struct rx_transfer *t = new_transfer(0, 40, 1, &data, false);

	for (uint32_t b = 40; b-- > 0;)
		hand_over(t, b, data);
	disk_settle(&rx, t);
	assert_int_equal(t->hashed, 40);
	assert_int_equal(t->disk_slots, 0);
	assert_true(t->disk_synced);
	assert_file_is(t, data);
	assert_digest_is(t, data);
	free(data);
}

/* Two transfers interleaved, each out of order: hash states stay apart. */
static void
test_disk_keeps_transfers_apart(void **state)
{
	static const uint32_t order[] = { 3, 1, 0, 5, 2, 4, 7, 6 };
	uint8_t *a, *b;
	struct rx_transfer *ta = new_transfer(0, 8, 0, &a, false);
	struct rx_transfer *tb = new_transfer(1, 8, 3, &b, false);

	for (unsigned i = 0; i < 8; i++) {
		hand_over(ta, order[i], a);
		hand_over(tb, order[7 - i], b);
	}
	disk_settle(&rx, NULL);
	assert_int_equal(ta->hashed, 8);
	assert_int_equal(tb->hashed, 8);
	assert_file_is(ta, a);
	assert_file_is(tb, b);
	assert_digest_is(ta, a);
	assert_digest_is(tb, b);
	free(a);
	free(b);
}

/* Blocks held for an earlier one are taken back by the barrier; the partial
 * state may not claim them until written; later they are read back. */
static void
test_disk_settle_takes_back_held_blocks(void **state)
{
	uint8_t *data;
	struct rx_transfer *t = new_transfer(0, 4, 0, &data, false);
	struct rx_block *b3, *b2;
	uint64_t bits[2];

	b3 = hand_over(t, 3, data);
	b2 = hand_over(t, 2, data);
	/* Not yet known to be on disk: left out of the partial state. */
	bits[0] = t->done_bits[0];
	disk_unwritten(&rx, t, bits);
	assert_true(t->disk_slots > 0);
	assert_int_equal(bits[0] & 0xc, 0);
	disk_settle(&rx, t);
	assert_int_equal(t->disk_slots, 0);
	assert_false(b3->disk);
	assert_false(b2->disk);
	assert_null(b3->t);
	assert_int_equal(t->hashed, 0);
	bits[0] = t->done_bits[0];
	disk_unwritten(&rx, t, bits);
	assert_int_equal(bits[0], 0xc);
	hand_over(t, 0, data);
	hand_over(t, 1, data);
	disk_settle(&rx, t);
	assert_int_equal(t->hashed, 4);
	assert_file_is(t, data);
	assert_digest_is(t, data);
	free(data);
}

/* A write that fails comes back as the errno, its done bit cleared. */
static void
test_disk_reports_a_failed_write(void **state)
{
	uint8_t *data;
	struct rx_transfer *t = new_transfer(0, 3, 0, &data, true);

	hand_over(t, 1, data);
	hand_over(t, 0, data);
	disk_settle(&rx, t);
	assert_int_equal(t->disk_slots, 0);
	assert_int_equal(t->disk_write_err, EBADF);
	assert_int_equal(t->blocks_done, 0);
	assert_int_equal(t->done_bits[0], 0);
	assert_int_equal(t->hashed, 0);
	assert_false(t->disk_synced);
	for (unsigned i = 0; i < POOL; i++)
		assert_false(rx.pool[i].disk);
	free(data);
}

/* Resumed after a restart with every block on disk: one job without a
 * block hashes the whole staging file. */
static void
test_disk_hashes_a_resumed_transfer_from_disk(void **state)
{
	uint8_t *data;
	struct rx_transfer *t = new_transfer(0, 70, 17, &data, false);

	assert_int_equal(pwrite(t->fd, data, t->size, 0), (ssize_t)t->size);
	for (uint32_t b = 0; b < t->blocks; b++) {
		t->done_bits[b / 64] |= (uint64_t)1 << (b % 64);
		t->written_bits[b / 64] |= (uint64_t)1 << (b % 64);
	}
	t->blocks_done = t->blocks;
	disk_submit_hash(&rx, t);
	assert_int_equal(t->disk_slots, 1);
	disk_settle(&rx, t);
	assert_int_equal(t->disk_slots, 0);
	assert_int_equal(t->hashed, 70);
	assert_false(t->disk_read_err);
	assert_true(t->disk_synced);
	assert_digest_is(t, data);
	free(data);
}

/* Told all was on disk when a block is not: reported, never a loop. */
static void
test_disk_hash_only_job_reports_a_missing_block(void **state)
{
	uint8_t *data;
	struct rx_transfer *t = new_transfer(0, 3, 0, &data, false);

	assert_int_equal(pwrite(t->fd, data, t->size, 0), (ssize_t)t->size);
	t->written_bits[0] = 0x5; /* block 1 is not known to be on disk */
	disk_submit_hash(&rx, t);
	disk_settle(&rx, t);
	assert_int_equal(t->disk_slots, 0);
	assert_int_equal(t->hashed, 1);
	assert_true(t->disk_read_err);
	free(data);
}

static void
test_disk_not_started_with_no_workers(void **state)
{
	struct rx none;

	memset(&none, 0, sizeof(none));
	none.loop = uv_default_loop();
	none.set.block_pool = POOL;
	none.set.workers = 0;
	disk_start(&none);
	assert_null(none.disk);
	disk_settle(&none, NULL); /* no-ops */
	disk_stop(&none);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disk_writes_and_hashes_in_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_disk_hashes_out_of_order_through_hold_and_read_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_keeps_transfers_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_settle_takes_back_held_blocks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_disk_reports_a_failed_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_hashes_a_resumed_transfer_from_disk, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_disk_hash_only_job_reports_a_missing_block,
						setup, teardown),
		cmocka_unit_test(test_disk_not_started_with_no_workers),
	};

	dd_log_init("test_disk", DD_LOG_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
