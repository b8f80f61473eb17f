/*
 * The loop's provided-buffer ring (io_uring): the buffers the kernel picks from when a receive stream
 * has bytes, shared by all the loop's connections, so a connection with nothing to read holds none.
 *
 * The ring is registered the first time a stream is made (a loop that never receives pays nothing),
 * with incremental consumption where the kernel has it (IOU_PBUF_RING_INC, 6.12): a completion then
 * takes only the bytes it needs from the buffer at the ring's head, and the next arrival, of any
 * connection, goes on in the same buffer, so 64-byte messages do not use up 16 KiB each. Without it,
 * every completion takes whole buffers. Either way a completion names the first buffer it used, and a
 * bundle (6.10) runs on into the buffers after it in the ring, which this file knows because it put
 * them there: pos[] says where each buffer went, slot_bid[] which buffer each place holds, and, with
 * incremental consumption, filled[] how far the kernel has written into each.
 *
 * A buffer the kernel has finished with (filled, or ended without IORING_CQE_F_BUF_MORE) is out of the
 * ring until weft has copied its bytes (recvstream.c, at once) and no borrowed view points into it;
 * then it goes back at the ring's tail. The ring starts with cfg.recv_buffers buffers and doubles, up
 * to recv_buffers_max, when a stream finds it empty; address space for the most is reserved up front
 * (MAP_NORESERVE), and pages are used as the kernel fills them.
 */
#include "uring.h"

#include <sys/mman.h>

#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2 /* 6.12: io_uring_buf_reg's flags, which liburing 2.3 calls pad */
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4) /* with IOU_PBUF_RING_INC: the buffer has room and stays in use */
#endif

/* The buffer group every stream of a loop receives into. */
#define WEFT__BGID 0

enum { BUFSTATE_IN = 0, BUFSTATE_OUT = 1 };

static inline char *buf_addr(const weft__bufring *br, unsigned bid)
{
    return br->base + (size_t)bid * br->size;
}

/* Puts bid at the ring's tail, empty; the kernel sees it once the tail is published. */
static void buf_add(weft__bufring *br, unsigned bid)
{
    uint16_t at = br->tail++;
    io_uring_buf_ring_add(br->ring, buf_addr(br, bid), (unsigned)br->size, (unsigned short)bid, (int)br->mask, 0);
    io_uring_buf_ring_advance(br->ring, 1);
    br->slot_bid[at & br->mask] = (uint16_t)bid;
    br->pos[bid] = at;
    br->filled[bid] = 0;
    br->state[bid] = BUFSTATE_IN;
    br->in_ring++;
}

/* Adds buffers count..count+n-1 to the ring. */
static void grow_by(weft_loop *l, weft__bufring *br, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        buf_add(br, br->count + i);
    br->count += n;
    l->stats.recv_bufs = br->count;
}

int weft__bufring_init(weft_loop *l, weft__uring *b)
{
    weft__bufring *br = &b->bufring;
    const weft_config *cfg = &l->cfg;
    unsigned entries = 1;
    while (entries < cfg->recv_buffers_max)
        entries <<= 1;
    br->entries = entries;
    br->mask = entries - 1;
    br->max = cfg->recv_buffers_max;
    br->size = cfg->recv_buffer_size;
    br->ring_bytes = entries * sizeof(struct io_uring_buf);
    br->reserved = (size_t)br->max * br->size;
    void *ring = mmap(NULL, br->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *base = mmap(NULL, br->reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    br->pos = calloc(br->max, sizeof *br->pos);
    br->filled = calloc(br->max, sizeof *br->filled);
    br->lends = calloc(br->max, sizeof *br->lends);
    br->state = calloc(br->max, sizeof *br->state);
    br->slot_bid = calloc(entries, sizeof *br->slot_bid);
    int r = -ENOMEM;
    if (ring == MAP_FAILED || base == MAP_FAILED || !br->pos || !br->filled || !br->lends || !br->state ||
        !br->slot_bid)
        goto fail;
    br->ring = ring;
    br->base = base;
    io_uring_buf_ring_init(br->ring);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)ring, .ring_entries = entries, .bgid = WEFT__BGID};
    br->inc = !b->no_pbuf_inc;
    if (br->inc) {
        reg.pad = IOU_PBUF_RING_INC;
        r = io_uring_register_buf_ring(&b->ring, &reg, 0);
        if (r == -EINVAL)
            br->inc = false; /* before 6.12 */
    }
    if (!br->inc) {
        reg.pad = 0;
        r = io_uring_register_buf_ring(&b->ring, &reg, 0);
    }
    if (r < 0)
        goto fail;
    br->registered = true;
    grow_by(l, br, cfg->recv_buffers);
    return 0;
fail:
    if (ring != MAP_FAILED)
        munmap(ring, br->ring_bytes);
    if (base != MAP_FAILED)
        munmap(base, br->reserved);
    br->ring = NULL;
    br->base = NULL;
    weft__bufring_fini(br);
    return r;
}

void weft__bufring_fini(weft__bufring *br)
{
    if (br->ring)
        munmap(br->ring, br->ring_bytes);
    if (br->base)
        munmap(br->base, br->reserved);
    free(br->pos);
    free(br->filled);
    free(br->lends);
    free(br->state);
    free(br->slot_bid);
    memset(br, 0, sizeof *br);
}

bool weft__bufring_grow(weft_loop *l, weft__bufring *br)
{
    if (br->count >= br->max)
        return false;
    unsigned n = br->count < br->max - br->count ? br->count : br->max - br->count;
    grow_by(l, br, n ? n : 1);
    return true;
}

void weft__bufring_walk_start(weft__bufring *br, weft__bufwalk *w, unsigned bid, size_t bytes, bool buf_more)
{
    w->pos = br->pos[bid];
    w->off = br->inc ? br->filled[bid] : 0;
    w->left = bytes;
    w->buf_more = buf_more;
    w->done = false;
}

bool weft__bufring_walk_next(weft_loop *l, weft__bufring *br, weft__bufwalk *w, weft__bufseg *seg)
{
    if (w->done)
        return false;
    unsigned bid = br->slot_bid[w->pos & br->mask];
    size_t room = br->size - w->off;
    size_t n = w->left < room ? w->left : room;
    seg->p = buf_addr(br, bid) + w->off;
    seg->len = n;
    seg->bid = bid;
    w->left -= n;
    bool last = !w->left;
    bool full = w->off + n == br->size;
    if (br->inc)
        br->filled[bid] = (uint32_t)(w->off + n);
    /* Without incremental consumption every buffer a completion touched is used up; with it, a buffer
     * is done when full, or when the kernel says it will not go on in it. */
    seg->finished = !br->inc || full || (last && !w->buf_more);
    if (seg->finished) {
        br->state[bid] = BUFSTATE_OUT;
        br->in_ring--;
        uint64_t out = br->count - br->in_ring;
        l->stats.recv_bufs_out = out;
        if (out > l->stats.recv_bufs_peak)
            l->stats.recv_bufs_peak = out;
    }
    w->pos++;
    w->off = 0;
    w->done = last;
    return true;
}

void weft__bufring_put(weft_loop *l, weft__bufring *br, unsigned bid)
{
    if (br->state[bid] != BUFSTATE_OUT || br->lends[bid])
        return;
    buf_add(br, bid);
    l->stats.recv_bufs_out = br->count - br->in_ring;
}

void weft__bufring_lend(weft__bufring *br, unsigned bid)
{
    br->lends[bid]++;
}

void weft__bufring_unlend(weft_loop *l, weft__bufring *br, unsigned bid)
{
    if (br->lends[bid])
        br->lends[bid]--;
    weft__bufring_put(l, br, bid);
}
