/*
 * kv_store — one shard's keyspace: binary-safe keys mapped to binary-safe string values, each with an
 * optional expiry time in Unix milliseconds (Redis's clock, so that EXAT and PXAT mean what they mean
 * there). No weft in it: a store belongs to one thread, and kv_server.c gives each loop its own.
 *
 * Expiry is lazy and active, as in Redis. A lookup that meets a key past its time deletes it and
 * answers "absent". kv_store_expire_cycle walks the keys that have a time (only those: they are kept
 * in a list of their own) from where the last cycle stopped, a bounded number at a time, so the
 * caller decides how long the loop is held.
 *
 * The table is chained and grows and shrinks incrementally, as Redis's dict does: while it moves to
 * a new size, each write moves one bucket of the old table and kv_store_rehash_step moves more when
 * the caller has time, so no single command pays for rehashing a million keys.
 */
#ifndef WEFT_EXAMPLE_KV_STORE_H
#define WEFT_EXAMPLE_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_store kv_store;
typedef struct kv_entry kv_entry;

/* Expiry times: a Unix time in milliseconds (> 0), or one of these. */
#define KV_NO_EXPIRE (-1)          /* the key has none; kv_set: remove the key's */
#define KV_KEEP_EXPIRE (-2)        /* kv_set: keep the key's (SET ... KEEPTTL) */

/* Counters Redis's INFO calls expired_keys, keyspace_hits and keyspace_misses. */
typedef struct kv_store_stats {
    uint64_t expired_keys;         /* deleted because their time had passed, lazily or by a cycle */
    uint64_t keyspace_hits;        /* reads (kv_lookup_read) that found the key */
    uint64_t keyspace_misses;      /* reads that did not */
} kv_store_stats;

/*
 * The hash of a key: SipHash-1-3 under a key drawn from getrandom at start (kv_hash_init), so that
 * clients cannot choose keys that collide. The low half picks the bucket, the high half the shard.
 */
void kv_hash_init(void);
uint64_t kv_hash(const void *key, size_t len);

/* A new, empty store, or NULL (ENOMEM). */
kv_store *kv_store_new(void);
void kv_store_free(kv_store *s);

/* The live entry of key, or NULL. hash is kv_hash(key). An entry whose time is before now_ms is
 * deleted on the way (counted as expired) and is absent. kv_lookup_read counts a hit or a miss. */
kv_entry *kv_lookup(kv_store *s, const void *key, size_t key_len, uint64_t hash, int64_t now_ms);
kv_entry *kv_lookup_read(kv_store *s, const void *key, size_t key_len, uint64_t hash, int64_t now_ms);

/* An entry's value; valid until the next change to the store. */
const char *kv_entry_value(const kv_entry *e, size_t *len);
/* An entry's expiry time, or KV_NO_EXPIRE. */
int64_t kv_entry_expire(const kv_store *s, const kv_entry *e);

/*
 * Sets key to value[0..value_len), creating it or replacing its value, with expiry time expire (a Unix
 * time in ms, KV_NO_EXPIRE, or KV_KEEP_EXPIRE). Returns 0, or -ENOMEM with the store unchanged.
 */
int kv_set(kv_store *s, const void *key, size_t key_len, uint64_t hash, const void *value, size_t value_len,
           int64_t expire, int64_t now_ms);

/* Appends to key's value (creating it): the new length, or -ENOMEM with the store unchanged. */
long long kv_append(kv_store *s, const void *key, size_t key_len, uint64_t hash, const void *more, size_t more_len,
                    int64_t now_ms);

/* Deletes key: true if a live key was deleted (one already past its time counts as expired, not deleted). */
bool kv_delete(kv_store *s, const void *key, size_t key_len, uint64_t hash, int64_t now_ms);

/* Gives e the expiry time at (> 0), or removes its time (KV_NO_EXPIRE). 0, or -ENOMEM unchanged. */
int kv_set_expire(kv_store *s, kv_entry *e, int64_t at);
/* Deletes e, found by kv_lookup (EXPIRE with a time already passed). */
void kv_delete_entry(kv_store *s, kv_entry *e);

size_t kv_store_count(const kv_store *s);          /* keys, including those not yet found expired */
size_t kv_store_expires_count(const kv_store *s);  /* keys with an expiry time */
/* The mean time to live of the keys with an expiry time, in ms, at now_ms (0 without any). */
long long kv_store_avg_ttl(const kv_store *s, int64_t now_ms);
kv_store_stats *kv_store_stats_of(kv_store *s);

/* Deletes every key (FLUSHALL): the store is as new, its counters kept. */
void kv_store_clear(kv_store *s);

/*
 * Looks at up to max_checks keys with an expiry time, from where the last cycle stopped, and deletes
 * those before now_ms. Returns how many it deleted; *checked gets how many it looked at (less than
 * max_checks when there are fewer keys with a time than that).
 */
size_t kv_store_expire_cycle(kv_store *s, int64_t now_ms, size_t max_checks, size_t *checked);

/* Moves up to buckets buckets of an ongoing resize, and starts shrinking a table left mostly empty.
 * Returns true while a resize is under way. */
bool kv_store_rehash_step(kv_store *s, size_t buckets);

#endif /* WEFT_EXAMPLE_KV_STORE_H */
