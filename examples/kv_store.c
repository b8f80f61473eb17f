/*
 * kv_store — a shard's keyspace: a chained hash table that resizes incrementally, and the list of keys
 * with an expiry time that lazy and active expiry work from. kv_store.h says what each call does.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* malloc_usable_size */
#endif
#include "kv_store.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/*
 * One key and its value in one allocation (a million 16-byte keys with 16-byte values take 64-byte
 * chunks each). The expiry time is not here but in the store's list of keys with a time, which vol
 * indexes: most keys have none, and the list is what the active cycle walks.
 */
struct kv_entry {
    kv_entry *next;     /* the next entry of its bucket */
    uint32_t hash;      /* the low half of kv_hash(key): its bucket in either table */
    uint32_t vol;       /* its place in the store's list of keys with a time, or NO_VOL */
    uint32_t key_len;
    uint32_t value_len;
    char data[];        /* the key, then the value */
};

#define NO_VOL UINT32_MAX
#define INITIAL_BUCKETS 4

struct table {
    kv_entry **buckets;
    size_t mask;        /* buckets - 1 */
    size_t used;
};

struct timed_key {
    kv_entry *e;
    int64_t at;
};

struct kv_store {
    struct table t[2];  /* t[1] holds buckets only while t[0] is being moved into it */
    size_t rehash_pos;  /* the next bucket of t[0] to move */
    struct timed_key *timed;
    size_t timed_len, timed_cap;
    __int128 timed_sum; /* the sum of their times, for INFO's avg_ttl */
    size_t cycle_pos;   /* where the next expire cycle starts in timed */
    kv_store_stats stats;
};

/* ---- the hash ------------------------------------------------------------------------------------- */

static uint64_t hash_key[2];

void kv_hash_init(void)
{
    if (getrandom(hash_key, sizeof hash_key, 0) != (ssize_t)sizeof hash_key) {
        /* Only a kernel without getrandom gets here; the time still differs from run to run. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        hash_key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
        hash_key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
    }
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                      \
    do {                                                                                              \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                     \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                        \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                        \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                     \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-1-3: one compression round per 8 bytes, three to finish. */
uint64_t kv_hash(const void *key, size_t len)
{
    const unsigned char *in = key;
    uint64_t v0 = 0x736f6d6570736575ull ^ hash_key[0], v1 = 0x646f72616e646f6dull ^ hash_key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ hash_key[0], v3 = 0x7465646279746573ull ^ hash_key[1];
    const unsigned char *end = in + (len & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load_le64(in);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)in[i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ------------------------------------------------------------------------------------ */

kv_store *kv_store_new(void)
{
    return calloc(1, sizeof(kv_store));
}

static bool rehashing(const kv_store *s)
{
    return s->t[1].buckets != NULL;
}

static void free_table(struct table *t)
{
    for (size_t i = 0; t->buckets && i <= t->mask; i++) {
        kv_entry *e = t->buckets[i];
        while (e) {
            kv_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

void kv_store_clear(kv_store *s)
{
    free_table(&s->t[0]);
    free_table(&s->t[1]);
    free(s->timed);
    s->timed = NULL;
    s->timed_len = s->timed_cap = 0;
    s->timed_sum = 0;
    s->rehash_pos = s->cycle_pos = 0;
}

void kv_store_free(kv_store *s)
{
    if (!s)
        return;
    kv_store_clear(s);
    free(s);
}

/* Starts moving t[0] into a table of size buckets. Without memory the table stays as it is: chains
 * grow longer, nothing is lost. */
static void start_resize(kv_store *s, size_t size)
{
    kv_entry **buckets = calloc(size, sizeof *buckets);
    if (!buckets)
        return;
    s->t[1] = (struct table){.buckets = buckets, .mask = size - 1, .used = 0};
    s->rehash_pos = 0;
}

/* Moves up to n buckets of t[0] into t[1], passing at most 10 empty buckets per bucket to move (as
 * Redis's dictRehash does), and makes t[1] the table once t[0] is empty. */
static void rehash(kv_store *s, size_t n)
{
    size_t empty_visits = n * 10;
    struct table *from = &s->t[0], *to = &s->t[1];
    while (n-- && from->used) {
        while (!from->buckets[s->rehash_pos]) {
            s->rehash_pos++;
            if (--empty_visits == 0)
                return;
        }
        kv_entry *e = from->buckets[s->rehash_pos];
        while (e) {
            kv_entry *next = e->next;
            size_t i = e->hash & to->mask;
            e->next = to->buckets[i];
            to->buckets[i] = e;
            from->used--;
            to->used++;
            e = next;
        }
        from->buckets[s->rehash_pos++] = NULL;
    }
    if (from->used == 0) {
        free(from->buckets);
        s->t[0] = s->t[1];
        memset(&s->t[1], 0, sizeof s->t[1]);
        s->rehash_pos = 0;
    }
}

bool kv_store_rehash_step(kv_store *s, size_t buckets)
{
    struct table *t = &s->t[0];
    /* Shrink a table that is less than 1/8 full, as Redis's cron does below 1/10. */
    if (!rehashing(s) && t->buckets && t->mask + 1 > INITIAL_BUCKETS && t->used < (t->mask + 1) / 8) {
        size_t size = INITIAL_BUCKETS;
        while (size < t->used)
            size *= 2;
        start_resize(s, size);
    }
    if (rehashing(s))
        rehash(s, buckets);
    return rehashing(s);
}

/* The link (bucket head or a next field) holding key, or NULL; *which gets its table. */
static kv_entry **find(kv_store *s, const void *key, size_t key_len, uint32_t hash, int *which)
{
    for (int t = 0; t < 2; t++) {
        struct table *tb = &s->t[t];
        if (!tb->buckets)
            break;
        for (kv_entry **link = &tb->buckets[hash & tb->mask]; *link; link = &(*link)->next) {
            kv_entry *e = *link;
            if (e->hash == hash && e->key_len == key_len && memcmp(e->data, key, key_len) == 0) {
                *which = t;
                return link;
            }
        }
    }
    return NULL;
}

/* The link holding e itself (found by address). */
static kv_entry **link_of(kv_store *s, const kv_entry *e, int *which)
{
    for (int t = 0; t < 2; t++) {
        struct table *tb = &s->t[t];
        if (!tb->buckets)
            break;
        for (kv_entry **link = &tb->buckets[e->hash & tb->mask]; *link; link = &(*link)->next)
            if (*link == e) {
                *which = t;
                return link;
            }
    }
    return NULL; /* not reached: every entry is in a bucket */
}

/* ---- keys with an expiry time ---------------------------------------------------------------------- */

static int timed_add(kv_store *s, kv_entry *e, int64_t at)
{
    if (s->timed_len == s->timed_cap) {
        size_t cap = s->timed_cap ? s->timed_cap * 2 : 16;
        struct timed_key *timed = realloc(s->timed, cap * sizeof *timed);
        if (!timed)
            return -ENOMEM;
        s->timed = timed;
        s->timed_cap = cap;
    }
    e->vol = (uint32_t)s->timed_len;
    s->timed[s->timed_len++] = (struct timed_key){e, at};
    s->timed_sum += at;
    return 0;
}

/* Removes e from the list; the last one takes its place. */
static void timed_remove(kv_store *s, kv_entry *e)
{
    uint32_t i = e->vol;
    s->timed_sum -= s->timed[i].at;
    s->timed[i] = s->timed[--s->timed_len];
    s->timed[i].e->vol = i;
    e->vol = NO_VOL;
    if (s->timed_cap > 64 && s->timed_len < s->timed_cap / 4) {
        struct timed_key *timed = realloc(s->timed, s->timed_cap / 2 * sizeof *timed);
        if (timed) {
            s->timed = timed;
            s->timed_cap /= 2;
        }
    }
}

/* Unlinks and frees the entry at link (in table which). */
static void delete_at(kv_store *s, kv_entry **link, int which)
{
    kv_entry *e = *link;
    *link = e->next;
    s->t[which].used--;
    if (e->vol != NO_VOL)
        timed_remove(s, e);
    free(e);
}

static bool is_expired(const kv_store *s, const kv_entry *e, int64_t now_ms)
{
    /* Redis's keyIsExpired: a key lives through its own millisecond. */
    return e->vol != NO_VOL && now_ms > s->timed[e->vol].at;
}

/* ---- the calls ------------------------------------------------------------------------------------- */

kv_entry *kv_lookup(kv_store *s, const void *key, size_t key_len, uint64_t hash, int64_t now_ms)
{
    if (rehashing(s))
        rehash(s, 1);
    int which;
    kv_entry **link = find(s, key, key_len, (uint32_t)hash, &which);
    if (!link)
        return NULL;
    if (is_expired(s, *link, now_ms)) {
        delete_at(s, link, which);
        s->stats.expired_keys++;
        return NULL;
    }
    return *link;
}

kv_entry *kv_lookup_read(kv_store *s, const void *key, size_t key_len, uint64_t hash, int64_t now_ms)
{
    kv_entry *e = kv_lookup(s, key, key_len, hash, now_ms);
    if (e)
        s->stats.keyspace_hits++;
    else
        s->stats.keyspace_misses++;
    return e;
}

const char *kv_entry_value(const kv_entry *e, size_t *len)
{
    *len = e->value_len;
    return e->data + e->key_len;
}

int64_t kv_entry_expire(const kv_store *s, const kv_entry *e)
{
    return e->vol == NO_VOL ? KV_NO_EXPIRE : s->timed[e->vol].at;
}

/* A new entry for key and value (its next and vol unset), or NULL. capacity: bytes for the value. */
static kv_entry *new_entry(const void *key, size_t key_len, uint32_t hash, const void *value, size_t value_len,
                           size_t capacity)
{
    kv_entry *e = malloc(sizeof *e + key_len + capacity);
    if (!e)
        return NULL;
    e->hash = hash;
    e->key_len = (uint32_t)key_len;
    e->value_len = (uint32_t)value_len;
    e->vol = NO_VOL;
    memcpy(e->data, key, key_len);
    if (value_len)
        memcpy(e->data + key_len, value, value_len);
    return e;
}

/* Puts e at the head of its bucket: in the new table while resizing, growing when full. */
static int insert(kv_store *s, kv_entry *e)
{
    if (!s->t[0].buckets) {
        kv_entry **buckets = calloc(INITIAL_BUCKETS, sizeof *buckets);
        if (!buckets)
            return -ENOMEM;
        s->t[0] = (struct table){.buckets = buckets, .mask = INITIAL_BUCKETS - 1, .used = 0};
    } else if (!rehashing(s) && s->t[0].used >= s->t[0].mask + 1) {
        start_resize(s, (s->t[0].mask + 1) * 2);
    }
    struct table *t = &s->t[rehashing(s) ? 1 : 0];
    size_t i = e->hash & t->mask;
    e->next = t->buckets[i];
    t->buckets[i] = e;
    t->used++;
    return 0;
}

/* Replaces the entry at link by e (same key), moving its place in the timed list. */
static void replace_at(kv_store *s, kv_entry **link, kv_entry *e)
{
    kv_entry *old = *link;
    e->next = old->next;
    e->vol = old->vol;
    if (e->vol != NO_VOL)
        s->timed[e->vol].e = e;
    *link = e;
    free(old);
}

/* Whether an allocation of usable bytes suits one of need bytes: large enough and not wasteful. */
static bool fits(size_t usable, size_t need)
{
    return usable >= need && usable - need <= (need < 64 ? 64 : need);
}

int kv_set(kv_store *s, const void *key, size_t key_len, uint64_t hash, const void *value, size_t value_len,
           int64_t expire, int64_t now_ms)
{
    kv_entry *e = kv_lookup(s, key, key_len, hash, now_ms);
    if (e && expire > 0 && e->vol == NO_VOL && s->timed_len == s->timed_cap) {
        /* Make room for the time first, so that running out of memory changes nothing. */
        if (timed_add(s, e, expire) < 0)
            return -ENOMEM;
        timed_remove(s, e);
    }
    if (e) {
        int which;
        kv_entry **link = link_of(s, e, &which);
        if (fits(malloc_usable_size(e), sizeof *e + key_len + value_len)) {
            memcpy(e->data + key_len, value, value_len);
            e->value_len = (uint32_t)value_len;
        } else {
            kv_entry *fresh = new_entry(key, key_len, (uint32_t)hash, value, value_len, value_len);
            if (!fresh)
                return -ENOMEM;
            replace_at(s, link, fresh);
            e = fresh;
        }
    } else {
        e = new_entry(key, key_len, (uint32_t)hash, value, value_len, value_len);
        if (!e)
            return -ENOMEM;
        if (expire > 0 && timed_add(s, e, expire) < 0) {
            free(e);
            return -ENOMEM;
        }
        if (insert(s, e) < 0) {
            if (e->vol != NO_VOL)
                timed_remove(s, e);
            free(e);
            return -ENOMEM;
        }
        return 0;
    }
    if (expire != KV_KEEP_EXPIRE)
        kv_set_expire(s, e, expire); /* room was made above: it cannot fail */
    return 0;
}

long long kv_append(kv_store *s, const void *key, size_t key_len, uint64_t hash, const void *more, size_t more_len,
                    int64_t now_ms)
{
    kv_entry *e = kv_lookup(s, key, key_len, hash, now_ms);
    if (!e) {
        int r = kv_set(s, key, key_len, hash, more, more_len, KV_NO_EXPIRE, now_ms);
        return r < 0 ? r : (long long)more_len;
    }
    size_t len = e->value_len + more_len;
    if (malloc_usable_size(e) < sizeof *e + key_len + len) {
        /* Room to grow, as sds gives: double up to 1 MiB, then 1 MiB more at a time, so that a value
         * built by many APPENDs is not copied each time. */
        size_t capacity = len < (1u << 20) ? len * 2 : len + (1u << 20);
        int which;
        kv_entry **link = link_of(s, e, &which);
        kv_entry *grown = new_entry(key, key_len, (uint32_t)hash, e->data + key_len, e->value_len, capacity);
        if (!grown)
            return -ENOMEM;
        replace_at(s, link, grown);
        e = grown;
    }
    memcpy(e->data + key_len + e->value_len, more, more_len);
    e->value_len = (uint32_t)len;
    return (long long)len;
}

bool kv_delete(kv_store *s, const void *key, size_t key_len, uint64_t hash, int64_t now_ms)
{
    kv_entry *e = kv_lookup(s, key, key_len, hash, now_ms);
    if (e)
        kv_delete_entry(s, e);
    return e != NULL;
}

void kv_delete_entry(kv_store *s, kv_entry *e)
{
    int which;
    kv_entry **link = link_of(s, e, &which);
    delete_at(s, link, which);
}

int kv_set_expire(kv_store *s, kv_entry *e, int64_t at)
{
    if (at == KV_NO_EXPIRE) {
        if (e->vol != NO_VOL)
            timed_remove(s, e);
        return 0;
    }
    if (e->vol == NO_VOL)
        return timed_add(s, e, at);
    s->timed_sum += (__int128)at - s->timed[e->vol].at;
    s->timed[e->vol].at = at;
    return 0;
}

size_t kv_store_count(const kv_store *s)
{
    return s->t[0].used + s->t[1].used;
}

size_t kv_store_expires_count(const kv_store *s)
{
    return s->timed_len;
}

long long kv_store_avg_ttl(const kv_store *s, int64_t now_ms)
{
    if (!s->timed_len)
        return 0;
    __int128 avg = s->timed_sum / (__int128)s->timed_len - now_ms;
    return avg < 0 ? 0 : avg > INT64_MAX ? INT64_MAX : (long long)avg;
}

kv_store_stats *kv_store_stats_of(kv_store *s)
{
    return &s->stats;
}

size_t kv_store_expire_cycle(kv_store *s, int64_t now_ms, size_t max_checks, size_t *checked)
{
    size_t expired = 0, looked = 0;
    /* One pass over the list at most: a key looked at twice in a cycle tells nothing new. */
    size_t limit = max_checks < s->timed_len ? max_checks : s->timed_len;
    while (looked < limit && s->timed_len) {
        if (s->cycle_pos >= s->timed_len)
            s->cycle_pos = 0;
        kv_entry *e = s->timed[s->cycle_pos].e;
        looked++;
        if (now_ms > s->timed[s->cycle_pos].at) {
            kv_delete_entry(s, e); /* the last key moves into cycle_pos: it is looked at next */
            s->stats.expired_keys++;
            expired++;
        } else {
            s->cycle_pos++;
        }
    }
    *checked = looked;
    return expired;
}
