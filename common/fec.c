/* Reed–Solomon erasure coding: ISA-L Cauchy encode and small-inverse decode. */
#include "fec.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#define CACHE_SLOTS 8

/*
 * The largest k * e (decode) or k * m (encode) with k + m <= 255:
 * 127 * 128. ISA-L tables take 32 bytes per coefficient.
 */
#define MAX_PRODUCT ((DD_FEC_MAX_TOTAL / 2) * (DD_FEC_MAX_TOTAL - DD_FEC_MAX_TOTAL / 2))
/* The largest number of lost data fragments that can be rebuilt. */
#define MAX_LOST (DD_FEC_MAX_TOTAL / 2)
/* A generator matrix has (k + m) * k <= 255 * 255 bytes. */
#define MAX_MATRIX (DD_FEC_MAX_TOTAL * DD_FEC_MAX_TOTAL)

/*
 * One cached (k, m) pair: the (k + m) x k Cauchy generator matrix (rows 0..k-1
 * are the identity) and the 32 * k * m bytes of encode tables, which are built
 * on the first encode (a decoder only needs the matrix). Slots are sized for
 * the worst case and allocated with the coder, so no call ever allocates; the
 * pages of a large calloc are only touched as far as they are used.
 */
struct slot {
	unsigned k, m;      /* k == 0: empty */
	unsigned long used; /* LRU stamp */
	int tables_ready;
	uint8_t matrix[MAX_MATRIX];
	uint8_t tables[32 * MAX_PRODUCT];
};

struct dd_fec {
	struct slot slots[CACHE_SLOTS];
	unsigned long clock;

	/* GF(2^8) logarithms to base 2, built with gf_mul, so that building a
	 * decode matrix costs a table lookup per product, not a library call. */
	uint8_t log[256];
	uint8_t exp[2 * 255];

	/* Decode scratch, sized for the worst case so a call never allocates. */
	uint8_t sub[MAX_LOST * MAX_LOST];    /* B = A[P][L], destroyed by inversion */
	uint8_t inv[MAX_LOST * MAX_LOST];    /* B^-1 */
	uint8_t dmat[MAX_PRODUCT];           /* C = B^-1 * [A[P][R] | I], e x k */
	uint8_t dtbls[32 * MAX_PRODUCT];
	uint8_t logar[MAX_PRODUCT];          /* log A[P][R], e x (k - e) */
	unsigned lost[DD_FEC_MAX_TOTAL];     /* L: lost data indices */
	unsigned rcvd[DD_FEC_MAX_TOTAL];     /* R: received data indices */
	unsigned prow[DD_FEC_MAX_TOTAL];     /* P: absolute rows of used parity */
	uint8_t *in[DD_FEC_MAX_TOTAL];
	uint8_t *out[DD_FEC_MAX_TOTAL];
};

int
dd_fec_new(struct dd_fec **out)
{
	struct dd_fec *fec;
	unsigned i;
	uint8_t x = 1;

	if (out == NULL)
		return -EINVAL;
	fec = calloc(1, sizeof(*fec));
	if (fec == NULL)
		return -ENOMEM;
	/* 2 generates the multiplicative group of ISA-L's field (poly 0x11d). */
	for (i = 0; i < 255; i++) {
		fec->exp[i] = fec->exp[i + 255] = x;
		fec->log[x] = (uint8_t)i;
		x = gf_mul(x, 2);
	}
	*out = fec;
	return 0;
}

void
dd_fec_free(struct dd_fec *fec)
{
	free(fec);
}

static int
check_shape(unsigned k, unsigned m, size_t len)
{
	if (k < 1 || k > DD_FEC_MAX_TOTAL || m > DD_FEC_MAX_TOTAL - k)
		return -EINVAL;
	if (len == 0 || len > INT_MAX)
		return -EINVAL;
	return 0;
}

/* The cache slot for (k, m), holding its generator matrix; evicts the LRU. */
static struct slot *
lookup(struct dd_fec *fec, unsigned k, unsigned m)
{
	struct slot *s, *victim = &fec->slots[0];
	unsigned i;

	for (i = 0; i < CACHE_SLOTS; i++) {
		s = &fec->slots[i];
		if (s->k == k && s->m == m) {
			s->used = ++fec->clock;
			return s;
		}
		if (s->k == 0 || (victim->k != 0 && s->used < victim->used))
			victim = s;
	}

	s = victim;
	s->k = k;
	s->m = m;
	s->used = ++fec->clock;
	s->tables_ready = 0;
	gf_gen_cauchy1_matrix(s->matrix, (int)(k + m), (int)k);
	return s;
}

int
dd_fec_encode(struct dd_fec *fec, unsigned k, unsigned m, size_t len,
	      uint8_t *const *data, uint8_t *const *parity)
{
	struct slot *s;
	unsigned i;
	int rc;

	rc = check_shape(k, m, len);
	if (rc < 0 || fec == NULL || data == NULL || (m > 0 && parity == NULL))
		return -EINVAL;
	for (i = 0; i < k; i++)
		if (data[i] == NULL)
			return -EINVAL;
	for (i = 0; i < m; i++)
		if (parity[i] == NULL)
			return -EINVAL;
	if (m == 0)
		return 0;

	s = lookup(fec, k, m);
	if (!s->tables_ready) {
		ec_init_tables((int)k, (int)m, &s->matrix[(size_t)k * k], s->tables);
		s->tables_ready = 1;
	}
	/* ISA-L does not write through these arrays; its prototype lacks const. */
	ec_encode_data((int)len, (int)k, (int)m, s->tables, (uint8_t **)data,
		       (uint8_t **)parity);
	return 0;
}

int
dd_fec_decode(struct dd_fec *fec, unsigned k, unsigned m, size_t len,
	      uint8_t *const *frags, const uint8_t *present)
{
	const uint8_t *a, *row, *ex, *lg;
	struct slot *s;
	unsigned i, j, t, e, nr, np;
	uint8_t coef, *c, *w;
	int rc;

	rc = check_shape(k, m, len);
	if (rc < 0 || fec == NULL || frags == NULL || present == NULL)
		return -EINVAL;
	for (i = 0; i < k + m; i++)
		if (frags[i] == NULL)
			return -EINVAL;

	e = nr = 0;
	for (i = 0; i < k; i++) {
		if (present[i])
			fec->rcvd[nr++] = i;
		else
			fec->lost[e++] = i;
	}
	if (e == 0)
		return 0;
	np = 0;
	for (i = k; i < k + m && np < e; i++)
		if (present[i])
			fec->prow[np++] = i;
	if (np < e)
		return -ENODATA;

	s = lookup(fec, k, m);
	a = s->matrix;

	/* B = A[P][L]; any square submatrix of a Cauchy matrix is invertible. */
	for (i = 0; i < e; i++)
		for (j = 0; j < e; j++)
			fec->sub[i * e + j] = a[fec->prow[i] * k + fec->lost[j]];
	if (gf_invert_matrix(fec->sub, fec->inv, (int)e) != 0)
		return -EIO; /* cannot happen with a Cauchy matrix */

	/*
	 * C = B^-1 * [A[P][R] | I_e] over the inputs [data_R..., parity_P...].
	 * Cauchy entries are never zero, so log A[P][R] is always defined.
	 */
	for (t = 0; t < e; t++) {
		row = &a[fec->prow[t] * k];
		w = &fec->logar[t * nr];
		for (j = 0; j < nr; j++)
			w[j] = fec->log[row[fec->rcvd[j]]];
	}
	for (i = 0; i < e; i++) {
		c = &fec->dmat[i * k];
		memset(c, 0, nr);
		for (t = 0; t < e; t++) {
			coef = fec->inv[i * e + t];
			if (coef == 0)
				continue;
			ex = &fec->exp[fec->log[coef]];
			lg = &fec->logar[t * nr];
			for (j = 0; j < nr; j++)
				c[j] ^= ex[lg[j]];
		}
		memcpy(&c[nr], &fec->inv[i * e], e);
	}

	for (j = 0; j < nr; j++)
		fec->in[j] = frags[fec->rcvd[j]];
	for (t = 0; t < e; t++) {
		fec->in[nr + t] = frags[fec->prow[t]];
		fec->out[t] = frags[fec->lost[t]];
	}
	ec_init_tables((int)k, (int)e, fec->dmat, fec->dtbls);
	ec_encode_data((int)len, (int)k, (int)e, fec->dtbls, fec->in, fec->out);
	return 0;
}
