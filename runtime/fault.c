/*
 * Fault injection, built only with -Dfault_injection=true: tests make chosen operations fail the way
 * the kernel or the allocator can, and check that the error reaches the caller as documented with
 * nothing stuck, leaked or lost.
 *
 * Each site has a countdown: the next `count` times the site is reached, it fails with `error` (for
 * op sites, a positive value is a length cap: a short read or write). The settings are per thread,
 * like loops.
 */
#include "internal.h"

#if defined(WEFT_FAULT_INJECTION)

typedef struct fault {
    int error;
    unsigned skip;  /* passes to let through before failing */
    unsigned count; /* failures left */
} fault;

static WEFT__TLS fault op_faults[WEFT__OP_COUNT];
static WEFT__TLS fault site_faults[WEFT__FAULT_SITES];

void weft__fault_op(int opcode, int error, unsigned skip, unsigned count)
{
    if (opcode >= 0 && opcode < WEFT__OP_COUNT)
        op_faults[opcode] = (fault){error, skip, count};
}

void weft__fault_site(enum weft__fault_site site, int error, unsigned skip, unsigned count)
{
    if (site < WEFT__FAULT_SITES)
        site_faults[site] = (fault){error, skip, count};
}

void weft__fault_clear(void)
{
    for (int i = 0; i < WEFT__OP_COUNT; i++)
        op_faults[i] = (fault){0};
    for (int i = 0; i < WEFT__FAULT_SITES; i++)
        site_faults[i] = (fault){0};
}

static int take(fault *f)
{
    if (!f->count)
        return 0;
    if (f->skip) {
        f->skip--;
        return 0;
    }
    f->count--;
    return f->error;
}

int weft__fault_take_op(int opcode)
{
    return take(&op_faults[opcode]);
}

int weft__fault_take(enum weft__fault_site site)
{
    return take(&site_faults[site]);
}

#endif
