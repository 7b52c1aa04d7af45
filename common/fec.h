/* Reed–Solomon erasure coding over GF(2^8) with ISA-L's Cauchy matrices. */
#ifndef DD_FEC_H
#define DD_FEC_H

#include <stddef.h>
#include <stdint.h>

#define DD_FEC_MAX_TOTAL 255 /* k + m per block, a GF(2^8) limit */

/*
 * A coder caches generator matrices and multiplication tables for the (k, m)
 * pairs it has seen; it is not thread safe (one per thread).
 * Fragment i < k is data, k <= i < k+m is parity i-k. All fragments of a block
 * have the same length; lengths that are multiples of 64 are fastest.
 */
struct dd_fec;

int dd_fec_new(struct dd_fec **out);
void dd_fec_free(struct dd_fec *fec);

/* Compute m parity fragments from k data fragments. 1 <= k, 0 <= m,
 * k + m <= 255, else -EINVAL. */
int dd_fec_encode(struct dd_fec *fec, unsigned k, unsigned m, size_t len,
		  uint8_t *const *data, uint8_t *const *parity);

/*
 * Rebuild the missing data fragments of one block. frags has k + m pointers,
 * all to caller-owned buffers of len bytes; present[i] is non-zero when
 * fragment i arrived (its buffer holds it). On success every data buffer
 * frags[0..k-1] holds its fragment; parity buffers are left as they were.
 * Only the e x e sub-matrix of the e lost data fragments is inverted, so the
 * cost grows with the loss, not with k. Returns 0, or -ENODATA when fewer
 * than k fragments are present (nothing is written), or -EINVAL.
 */
int dd_fec_decode(struct dd_fec *fec, unsigned k, unsigned m, size_t len,
		  uint8_t *const *frags, const uint8_t *present);

#endif
