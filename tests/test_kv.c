/*
 * examples/kv_server (weft-kv) as users run it, on the backend under test (tests/server.h), driven by
 * Redis's own clients (redis-cli, redis-benchmark) and by a plain socket client where bytes must be
 * exact. The expected bytes are Redis 7.0.15's, recorded in kv_replies.h (test_kv_redis.c checks that
 * redis-server still gives them).
 *
 * What is pinned: every command's replies and errors byte for byte (one loop and two); what redis-cli
 * prints; HELLO, INFO and COMMAND; a pipeline of 10,000 commands answered in order (and redis-cli's
 * pipe mode); values from 0 B to 64 MiB, binary, round trip; expiry to the millisecond, and the active
 * sweep deleting keys nobody reads; Redis's limits (bulk length, inline line, query buffer, maxclients)
 * with Redis's errors and closes, and memory that does not follow what a client only announces; with
 * --threads 2, commands over keys of both shards, their atomicity, and a redis-benchmark run; SIGTERM
 * and SIGINT ending it with a stats line per loop.
 *
 * Every wait is bounded. No timing is asserted except where it is the behaviour (a key must be gone
 * after its time): those checks leave room for a slow machine, and where "not yet expired" depends on
 * how fast the test runs, the test reads the clock and only judges what the time allows.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sigabbrev_np, memmem */
#endif
#include <strings.h>

#include <pthread.h>

#include "kv_client.h"

TestSuite(kv, .timeout = 120);
TestSuite(kv_threads, .timeout = 120);

/* ---- the server ------------------------------------------------------------------------------------ */

static void kv_start(struct server *s, unsigned threads, const char *const *args)
{
    server_threads = threads;
    server_args = args;
    server_start(s, WEFT_KV_SERVER);
}

/*
 * Stops the server with sig and checks its stderr: exactly one stats line per loop, naming the backend
 * under test (and each loop once with --threads above 1), and whatever lines allowed[] start with (NULL
 * ended; NULL for none). keys[i] gets loop i's "keys" (keys may be NULL).
 *
 * The slow-task watchdog's lines are let through too: whether a command's task computes past 100 ms
 * (a 64 MiB value, a long pipeline under the sanitizers, a loaded machine) is a matter of speed, which
 * the benchmarks measure, not of what the server answers.
 */
static bool watchdog_line(const char *line)
{
    return strncmp(line, "weft: task ", 11) == 0 &&
           (strstr(line, " has run for ") || strstr(line, " held the loop for about "));
}

static void kv_stop(struct server *s, int sig, unsigned threads, const char *const *allowed, unsigned long long *keys)
{
    server_stop(s, sig);
    unsigned lines = 0;
    bool seen[8] = {false};
    for (char *line = s->err, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert(nl != NULL, "stderr ends without a newline: %s", s->err);
        *nl = '\0';
        bool ok = watchdog_line(line);
        for (size_t i = 0; allowed && allowed[i] && !ok; i++)
            ok = strncmp(line, allowed[i], strlen(allowed[i])) == 0;
        if (ok)
            continue;
        char backend[16];
        unsigned long long k = 0;
        const char *keys_at = strstr(line, "\"keys\":");
        cr_assert(sscanf(line, "{\"backend\":\"%15[^\"]\"", backend) == 1 && keys_at &&
                      sscanf(keys_at, "\"keys\":%llu", &k) == 1 && strstr(line, "\"commands\":"),
                  "not a stats line: %s", line);
        const char *want = backend_under_test();
        cr_assert(!want || strcmp(backend, want) == 0, "stats of backend %s, want %s", backend, want);
        unsigned loop = 0;
        const char *loop_at = strstr(line, "\"loop\":");
        if (threads > 1)
            cr_assert(loop_at && sscanf(loop_at, "\"loop\":%u", &loop) == 1 && loop < threads && !seen[loop],
                      "a stats line without its own loop number: %s", line);
        seen[loop] = true;
        if (keys)
            keys[loop] = k;
        lines++;
    }
    cr_assert(lines == threads, "%u stats lines for %u loops", lines, threads);
}

/* A field of the server's /proc/PID/status in KiB: "VmRSS" (resident) or "VmSize" (mapped). */
static long status_kib(pid_t pid, const char *field)
{
    char path[64], text[4096], pattern[32];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    snprintf(pattern, sizeof pattern, "%s: %%ld kB", field);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "%s: %s", path, strerror(errno));
    long kib = -1;
    while (fgets(text, sizeof text, f))
        if (sscanf(text, pattern, &kib) == 1)
            break;
    fclose(f);
    cr_assert(kib > 0, "no %s in %s", field, path);
    return kib;
}

Test(kv, every_reply_and_error_is_redis_7s_byte_for_byte)
{
    struct server s;
    kv_start(&s, 1, NULL);
    check_replies(s.port, "weft-kv");
    kv_stop(&s, SIGTERM, 1, (const char *const[]){"kv_server: a connection sent an HTTP request", NULL}, NULL);
}

Test(kv_threads, with_two_loops_every_reply_and_error_is_redis_7s_byte_for_byte)
{
    struct server s;
    kv_start(&s, 2, NULL);
    check_replies(s.port, "weft-kv --threads 2");
    kv_stop(&s, SIGTERM, 2, (const char *const[]){"kv_server: a connection sent an HTTP request", NULL}, NULL);
}

Test(kv, redis_cli_prints_what_it_prints_against_redis)
{
    struct server s;
    kv_start(&s, 1, NULL);
    check_cli(s.port, "weft-kv");
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, hello_2_answers_redis_7s_map_with_the_connection_id)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "CLIENT ID\r\n");
    long long id = read_int(c, "CLIENT ID");
    cr_assert(id > 0, "CLIENT ID %lld", id);
    char want[512];
    int n = snprintf(want, sizeof want,
                     "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:2\r\n"
                     "$2\r\nid\r\n:%lld\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                     "$7\r\nmodules\r\n*0\r\n",
                     id);
    conn_send_str(c, "HELLO 2\r\nHELLO\r\nHELLO 2 AUTH default anything SETNAME me\r\nCLIENT GETNAME\r\nHELLO 3\r\n");
    expect_reply(c, want, (size_t)n, "HELLO 2");
    expect_reply(c, want, (size_t)n, "HELLO");
    expect_reply(c, want, (size_t)n, "HELLO 2 AUTH default anything SETNAME me");
    EXPECT(c, "$2\r\nme\r\n", "CLIENT GETNAME after HELLO's SETNAME");
    /* RESP3 is not spoken: HELLO 3 gets what Redis answers a version it does not know. */
    EXPECT(c, "-NOPROTO unsupported protocol version\r\n", "HELLO 3");
    struct conn *other = conn_open(s.port);
    conn_send_str(other, "CLIENT ID\r\n");
    cr_assert(read_int(other, "CLIENT ID of another connection") != id, "two connections share an id");
    conn_close(other);
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

/* The value of field in INFO's text (a line "field:value"), copied to out. */
static const char *info_field(const char *info, const char *field, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "\r\n%s:", field);
    const char *at = strstr(info, key);
    cr_assert(at != NULL, "INFO has no %s: %s", field, shown(info, strlen(info)));
    at += strlen(key);
    size_t len = strcspn(at, "\r");
    snprintf(out, cap, "%.*s", (int)len, at);
    return out;
}

Test(kv, info_reports_the_backend_clients_keys_and_counters_in_redis_layout)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "SET a 1\r\nSET b 2 EX 1000\r\nGET a\r\nGET nope\r\nINFO\r\n");
    for (int i = 0; i < 4; i++)
        read_reply(c, &(size_t){0}, "the commands before INFO");
    size_t len;
    const char *r = read_reply(c, &len, "INFO");
    const char *body = memchr(r, '\n', len);
    cr_assert(r[0] == '$' && body, "INFO: %s", shown(r, len));
    body++;
    size_t body_len = len - (size_t)(body - r) - 2;
    cr_assert(strncmp(body, "# Server\r\nredis_version:7.0.15\r\n", 32) == 0, "INFO: %s", shown(r, len));
    /* The text with a CRLF before it, so that every field, the first too, follows a CRLF (info_field). */
    char *info = malloc(body_len + 3);
    cr_assert(info != NULL);
    memcpy(info, "\r\n", 2);
    memcpy(info + 2, body, body_len);
    info[body_len + 2] = '\0';
    char v[64];
    const char *backend = backend_under_test();
    cr_assert(!backend || strcmp(info_field(info, "multiplexing_api", v, sizeof v), backend) == 0,
              "multiplexing_api:%s under %s", v, backend);
    cr_assert(atoi(info_field(info, "process_id", v, sizeof v)) == s.pid, "process_id:%s, server pid %d", v, s.pid);
    cr_assert(atoi(info_field(info, "tcp_port", v, sizeof v)) == s.port, "tcp_port:%s", v);
    cr_assert(strcmp(info_field(info, "connected_clients", v, sizeof v), "1") == 0, "connected_clients:%s", v);
    cr_assert(strcmp(info_field(info, "maxclients", v, sizeof v), "10000") == 0, "maxclients:%s", v);
    cr_assert(strcmp(info_field(info, "keyspace_hits", v, sizeof v), "1") == 0, "keyspace_hits:%s", v);
    cr_assert(strcmp(info_field(info, "keyspace_misses", v, sizeof v), "1") == 0, "keyspace_misses:%s", v);
    cr_assert(atoll(info_field(info, "total_commands_processed", v, sizeof v)) == 5, "total_commands_processed:%s",
              v);
    cr_assert(atoll(info_field(info, "used_memory_rss", v, sizeof v)) > 0, "used_memory_rss:%s", v);
    const char *db = strstr(info, "\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=");
    cr_assert(db != NULL, "no keyspace line for 2 keys, 1 with a ttl: %s", shown(info, strlen(info)));
    long long avg = atoll(db + strlen("\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl="));
    cr_assert(avg > 900000 && avg <= 1000000, "avg_ttl %lld ms for one key of EX 1000", avg);
    free(info);
    /* One section, in Redis's layout: its header and its fields, no empty line after them. */
    conn_send_str(c, "INFO clients\r\n");
    EXPECT(c, "$50\r\n# Clients\r\nconnected_clients:1\r\nmaxclients:10000\r\n\r\n", "INFO clients");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, command_count_list_and_info_describe_the_same_commands)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "COMMAND COUNT\r\n");
    long long count = read_int(c, "COMMAND COUNT");
    cr_assert(count == 30, "COMMAND COUNT %lld, want the 30 commands weft-kv has", count);
    conn_send_str(c, "COMMAND LIST\r\nCOMMAND\r\n");
    size_t len;
    const char *list = read_reply(c, &len, "COMMAND LIST");
    static const char list_start[] = "*30\r\n$3\r\nget\r\n$3\r\nset\r\n";
    cr_assert(strncmp(list, list_start, sizeof list_start - 1) == 0, "COMMAND LIST: %s", shown(list, len));
    const char *all = read_reply(c, &len, "COMMAND");
    static const char all_start[] = "*30\r\n*10\r\n$3\r\nget\r\n:2\r\n";
    cr_assert(strncmp(all, all_start, sizeof all_start - 1) == 0, "COMMAND: %s", shown(all, len));
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

/* ---- pipelines and sizes --------------------------------------------------------------------------- */

Test(kv, a_pipeline_of_10000_commands_in_one_write_is_answered_in_order)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    /* SET k<i> <i>, then INCR k<i>, then GET k<i>, ..., sent as one buffer of about 300 KB. */
    enum { N = 10000 };
    size_t cap = (size_t)N * 48, used = 0;
    char *out = malloc(cap);
    cr_assert(out != NULL);
    for (int i = 0; i < N; i++) {
        char key[16], value[16];
        int kl = snprintf(key, sizeof key, "k%d", i / 3), vl = snprintf(value, sizeof value, "%d", i);
        if (i % 3 == 0)
            used += (size_t)sprintf(out + used, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", kl, key, vl, value);
        else if (i % 3 == 1)
            used += (size_t)sprintf(out + used, "*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", kl, key);
        else
            used += (size_t)sprintf(out + used, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, key);
    }
    conn_send(c, out, used);
    free(out);
    for (int i = 0; i < N; i++) {
        char want[32], what[64];
        int n;
        if (i % 3 == 0)
            n = snprintf(want, sizeof want, "+OK\r\n");
        else if (i % 3 == 1)
            n = snprintf(want, sizeof want, ":%d\r\n", i);
        else
            n = snprintf(want, sizeof want, "$%d\r\n%d\r\n", snprintf(what, sizeof what, "%d", i - 1), i - 1);
        snprintf(what, sizeof what, "reply %d of %d", i + 1, N);
        expect_reply(c, want, (size_t)n, what);
    }
    conn_send_str(c, "DBSIZE\r\n");
    cr_assert(read_int(c, "DBSIZE") == (N + 2) / 3, "DBSIZE after the pipeline");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, redis_cli_pipe_mode_sends_10000_commands_and_sees_no_error)
{
    struct server s;
    kv_start(&s, 1, NULL);
    enum { N = 10000 };
    char *in = malloc((size_t)N * 64);
    cr_assert(in != NULL);
    size_t used = 0;
    for (int i = 0; i < N; i++)
        used += (size_t)sprintf(in + used, "SET key:%05d value-%d\r\n", i, i);
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", s.port);
    char *argv[] = {(char *)redis_program("redis-cli"), (char *)"-p", port_s, (char *)"--pipe", NULL};
    char out[4096], err[4096];
    int status = run_program_input(argv, in, used, out, sizeof out, err, sizeof err, 60000);
    free(in);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "redis-cli --pipe failed: %s%s", out, err);
    cr_assert(strstr(out, "errors: 0, replies: 10000") != NULL, "redis-cli --pipe: %s", out);
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "DBSIZE\r\nGET key:09999\r\n");
    cr_assert(read_int(c, "DBSIZE") == N);
    EXPECT(c, "$10\r\nvalue-9999\r\n", "the last key set");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, values_from_0_bytes_to_64_mib_round_trip_byte_for_byte)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    static const size_t sizes[] = {0, 1, 2, 15, 16, 4095, 4096, 16383, 16384, 65537, (1u << 20) + 7, 16u << 20,
                                   64u << 20};
    enum { SIZES = sizeof sizes / sizeof sizes[0] };
    for (size_t i = 0; i < SIZES; i++) {
        unsigned char *value = malloc(sizes[i] + 1);
        cr_assert(value != NULL);
        fill_pattern(value, sizes[i], (uint32_t)i + 7); /* every byte value, CR and LF and NUL among them */
        char key[32], what[64];
        snprintf(key, sizeof key, "value-%zu", sizes[i]);
        snprintf(what, sizeof what, "SET and GET of %zu bytes", sizes[i]);
        send_command(c, 3, (struct bytes[]){{"SET", 3}, {key, strlen(key)}, {(char *)value, sizes[i]}});
        EXPECT(c, "+OK\r\n", what);
        cmd(c, "GET", key, NULL);
        size_t len;
        const char *r = read_reply(c, &len, what);
        char head[32];
        int hl = snprintf(head, sizeof head, "$%zu\r\n", sizes[i]);
        cr_assert(len == (size_t)hl + sizes[i] + 2 && memcmp(r, head, (size_t)hl) == 0, "%s: reply %s", what,
                  shown(r, len < 64 ? len : 64));
        same_bytes((const unsigned char *)r + hl, value, sizes[i], what);
        cmd(c, "STRLEN", key, NULL);
        cr_assert(read_int(c, what) == (long long)sizes[i], "%s: STRLEN", what);
        free(value);
    }
    /* All of them in one MGET, then a value built by APPENDs of 1 MiB. */
    cmd(c, "DBSIZE", NULL);
    cr_assert(read_int(c, "DBSIZE") == SIZES);
    unsigned char *chunk = malloc(1 << 20);
    cr_assert(chunk != NULL);
    for (int i = 0; i < 8; i++) {
        fill_pattern(chunk, 1 << 20, 100u + (uint32_t)i);
        send_command(c, 3, (struct bytes[]){{"APPEND", 6}, {"built", 5}, {(char *)chunk, 1 << 20}});
        cr_assert(read_int(c, "APPEND") == (long long)(i + 1) << 20, "APPEND %d", i);
    }
    cmd(c, "GET", "built", NULL);
    size_t len;
    const char *r = read_reply(c, &len, "GET of the appended value");
    cr_assert(len == 10 + (8u << 20) + 2, "GET built: %zu bytes", len);
    for (int i = 0; i < 8; i++) {
        fill_pattern(chunk, 1 << 20, 100u + (uint32_t)i);
        same_bytes((const unsigned char *)r + 10 + ((size_t)i << 20), chunk, 1 << 20, "the appended value");
    }
    free(chunk);
    conn_close(c);
    /* A command on 64 MiB copies the value in one go (into the store, into the reply) and holds its loop
     * that long, as Redis does: weft's watchdog may say so, and that is all it may say. */
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

/* ---- expiry ---------------------------------------------------------------------------------------- */

Test(kv, keys_expire_at_millisecond_granularity)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    /* A key set for 300 ms is there while less than 300 ms have passed (judged only when the test saw the
     * reply that soon), and gone once 300 ms have; PTTL counts in milliseconds, not whole seconds. */
    bool judged_alive = false;
    for (int attempt = 0; attempt < 5 && !judged_alive; attempt++) {
        uint64_t t0 = mono_ns();
        conn_send_str(c, "SET k v PX 300\r\nPTTL k\r\nGET k\r\n");
        EXPECT(c, "+OK\r\n", "SET PX 300");
        long long pttl = read_int(c, "PTTL");
        size_t len;
        const char *r = read_reply(c, &len, "GET right after");
        if (mono_ns() - t0 < MS(250)) {
            cr_assert(pttl > 0 && pttl <= 300, "PTTL %lld right after PX 300", pttl);
            cr_assert(len == 7 && memcmp(r, "$1\r\nv\r\n", 7) == 0, "GET right after PX 300: %s", shown(r, len));
            judged_alive = true;
        }
    }
    cr_assert(judged_alive, "the machine was too slow in all five attempts to judge a 300 ms key alive");
    usleep(350 * 1000);
    conn_send_str(c, "GET k\r\nEXISTS k\r\nPTTL k\r\n");
    EXPECT(c, "$-1\r\n", "GET 350 ms after PX 300");
    EXPECT(c, ":0\r\n", "EXISTS after the time");
    EXPECT(c, ":-2\r\n", "PTTL after the time");
    /* A millisecond is enough: PX 1, then 20 ms later the key is gone. */
    conn_send_str(c, "SET one v PX 1\r\n");
    EXPECT(c, "+OK\r\n", "SET PX 1");
    usleep(20 * 1000);
    conn_send_str(c, "GET one\r\n");
    EXPECT(c, "$-1\r\n", "GET 20 ms after PX 1");
    /* PEXPIRE and PERSIST: a key made persistent outlives its former time. */
    conn_send_str(c, "SET p v\r\nPEXPIRE p 200\r\nPERSIST p\r\n");
    EXPECT(c, "+OK\r\n", "SET p");
    EXPECT(c, ":1\r\n", "PEXPIRE p 200");
    EXPECT(c, ":1\r\n", "PERSIST p");
    usleep(250 * 1000);
    conn_send_str(c, "GET p\r\nTTL p\r\n");
    EXPECT(c, "$1\r\nv\r\n", "GET of a persisted key after its former time");
    EXPECT(c, ":-1\r\n", "TTL of a persisted key");
    /* SET with PXAT in the past stores the key already expired, as Redis does. */
    conn_send_str(c, "SET past v PXAT 1\r\nGET past\r\n");
    EXPECT(c, "+OK\r\n", "SET PXAT 1");
    EXPECT(c, "$-1\r\n", "GET of a key set with a past PXAT");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, the_active_sweep_deletes_expired_keys_that_nobody_reads)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    enum { TIMED = 2000, KEPT = 10 };
    for (int i = 0; i < TIMED + KEPT; i++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", i);
        if (i < TIMED)
            cmd(c, "SET", key, "v", "PX", "50", NULL);
        else
            cmd(c, "SET", key, "v", NULL);
    }
    for (int i = 0; i < TIMED + KEPT; i++)
        EXPECT(c, "+OK\r\n", "SET");
    /* DBSIZE counts keys past their time until something deletes them; no command here reads a key. */
    long long keys = TIMED + KEPT;
    uint64_t deadline = mono_ns() + SEC(10);
    while (keys > KEPT && mono_ns() < deadline) {
        usleep(20 * 1000);
        conn_send_str(c, "DBSIZE\r\n");
        keys = read_int(c, "DBSIZE");
    }
    cr_assert(keys == KEPT, "DBSIZE %lld 10 s after %d keys of PX 50 and %d without", keys, TIMED, KEPT);
    conn_send_str(c, "INFO stats\r\n");
    size_t len;
    const char *r = read_reply(c, &len, "INFO stats");
    cr_assert(memmem(r, len, "\r\nexpired_keys:2000\r\n", 21) && memmem(r, len, "\r\nkeyspace_misses:0\r\n", 20) &&
                  memmem(r, len, "\r\nkeyspace_hits:0\r\n", 18),
              "INFO stats after the sweep: %s", shown(r, len));
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

/* ---- limits and bad input -------------------------------------------------------------------------- */

Test(kv, a_bulk_longer_than_proto_max_bulk_len_gets_redis_error_and_the_connection_closes)
{
    struct server s;
    kv_start(&s, 1, (const char *const[]){"--proto-max-bulk-len", "1m", NULL});
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "CONFIG GET proto-max-bulk-len\r\n");
    EXPECT(c, "*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n1048576\r\n", "CONFIG GET proto-max-bulk-len");
    /* At the limit the value is taken... */
    char *value = malloc(1 << 20);
    cr_assert(value != NULL);
    memset(value, 'v', 1 << 20);
    send_command(c, 3, (struct bytes[]){{"SET", 3}, {"k", 1}, {value, 1 << 20}});
    EXPECT(c, "+OK\r\n", "SET of proto-max-bulk-len bytes");
    /* ...an APPEND past it is refused as Redis refuses it, and one byte over in a request closes. */
    cmd(c, "APPEND", "k", "x", NULL);
    EXPECT(c, "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n", "APPEND past the limit");
    conn_send_str(c, "PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n");
    EXPECT(c, "+PONG\r\n", "PING before the long bulk");
    EXPECT(c, "-ERR Protocol error: invalid bulk length\r\n", "a bulk of 1 MiB + 1");
    expect_end(c, "after the invalid bulk length");
    conn_close(c);
    free(value);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, an_inline_line_without_end_gets_redis_error_and_no_more_than_about_64_kib_is_taken)
{
    struct server s;
    kv_start(&s, 1, NULL);
    /* 64 KiB + 1 bytes without a newline: the error, then the end. */
    struct conn *c = conn_open(s.port);
    char *line = malloc(65537);
    cr_assert(line != NULL);
    memset(line, 'a', 65537);
    conn_send(c, line, 65537);
    EXPECT(c, "-ERR Protocol error: too big inline request\r\n", "an inline line of 64 KiB + 1");
    expect_end(c, "after the too big inline request");
    conn_close(c);
    free(line);
    /* A client that never stops sending: the server closes on it long before 64 MiB. */
    int fd = client_connect(s.port);
    set_nonblocking(fd);
    char *junk = malloc(1 << 16);
    cr_assert(junk != NULL);
    memset(junk, 'b', 1 << 16);
    size_t pushed = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        cr_assert(poll(&pf, 1, IO_TIMEOUT_MS) == 1, "the server neither reads nor closes");
        ssize_t n = send(fd, junk, 1 << 16, MSG_NOSIGNAL);
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            break;
        cr_assert(n > 0 || errno == EAGAIN, "send: %s", strerror(errno));
        if (n > 0 && (pushed += (size_t)n) > (64u << 20))
            cr_assert_fail("64 MiB of one inline line taken without the connection being closed");
        if (n < 0) {
            /* The socket buffers are full: the server must have stopped reading, so it has closed. */
            char sink[256];
            ssize_t r = recv(fd, sink, sizeof sink, 0);
            if (r == 0 || (r < 0 && errno == ECONNRESET))
                break;
            if (r > 0)
                continue;
        }
    }
    close(fd);
    free(junk);
    /* And it still serves. */
    c = conn_open(s.port);
    conn_send_str(c, "PING\r\n");
    EXPECT(c, "+PONG\r\n", "PING after the bad clients");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, a_command_over_client_query_buffer_limit_closes_the_connection_without_a_reply)
{
    struct server s;
    kv_start(&s, 1, (const char *const[]){"--client-query-buffer-limit", "1m", NULL});
    struct conn *c = conn_open(s.port);
    char *value = malloc(2 << 20);
    cr_assert(value != NULL);
    memset(value, 'v', 2 << 20);
    /* 2 MiB in one SET: more than the query buffer may hold. Sent from a nonblocking socket, since the
     * server stops reading once it closes. */
    set_nonblocking(c->fd);
    char head[64];
    int hl = snprintf(head, sizeof head, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", 2 << 20);
    send(c->fd, head, (size_t)hl, MSG_NOSIGNAL);
    size_t sent = 0;
    uint64_t deadline = mono_ns() + SEC(10);
    while (sent < (2u << 20) && mono_ns() < deadline) {
        ssize_t n = send(c->fd, value + sent, (2u << 20) - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else if (errno == EPIPE || errno == ECONNRESET)
            break;
        else
            usleep(1000);
    }
    int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
    expect_end(c, "a SET larger than client-query-buffer-limit");
    conn_close(c);
    free(value);
    c = conn_open(s.port);
    conn_send_str(c, "EXISTS k\r\n");
    EXPECT(c, ":0\r\n", "the key of the refused SET");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, an_announced_512_mib_bulk_that_never_comes_costs_the_server_little_memory)
{
    struct server s;
    kv_start(&s, 1, NULL);
    long rss = status_kib(s.pid, "VmRSS"), mapped = status_kib(s.pid, "VmSize");
    struct conn *c[20];
    for (int i = 0; i < 20; i++) {
        c[i] = conn_open(s.port);
        conn_send_str(c[i], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nsome bytes, then nothing");
    }
    struct conn *probe = conn_open(s.port);
    conn_send_str(probe, "PING\r\n");
    EXPECT(probe, "+PONG\r\n", "PING beside the 20 stalled SETs");
    /* 10 GiB announced: a server that reserved it would map that much (touched or not). The bounds leave
     * room for the sanitizer builds, whose shadow memory follows every page touched. */
    long rss_growth = status_kib(s.pid, "VmRSS") - rss, mapped_growth = status_kib(s.pid, "VmSize") - mapped;
    cr_assert(rss_growth < 64 * 1024 && mapped_growth < 1024 * 1024,
              "20 connections announcing 512 MiB each grew the server by %ld KiB resident, %ld KiB mapped",
              rss_growth, mapped_growth);
    for (int i = 0; i < 20; i++)
        conn_close(c[i]);
    conn_close(probe);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, past_maxclients_a_connection_gets_redis_error_and_is_closed)
{
    struct server s;
    kv_start(&s, 1, (const char *const[]){"--maxclients", "2", NULL});
    struct conn *a = conn_open(s.port), *b = conn_open(s.port);
    conn_send_str(a, "PING\r\n");
    conn_send_str(b, "PING\r\n");
    EXPECT(a, "+PONG\r\n", "first client");
    EXPECT(b, "+PONG\r\n", "second client");
    struct conn *c = conn_open(s.port);
    EXPECT(c, "-ERR max number of clients reached\r\n", "third client");
    expect_end(c, "third client");
    conn_close(c);
    conn_close(b);
    /* Once one has gone, a new one is served; the refusal was counted. */
    for (int attempt = 0;; attempt++) {
        c = conn_open(s.port);
        conn_send_str(c, "PING\r\n");
        size_t len;
        const char *r = read_reply(c, &len, "a client after one left");
        if (len == 7 && memcmp(r, "+PONG\r\n", 7) == 0)
            break;
        /* The server may not have seen the second client leave yet. */
        cr_assert(attempt < 50, "still refused 50 times after a client left: %s", shown(r, len));
        conn_close(c);
        usleep(20 * 1000);
    }
    conn_send_str(c, "INFO stats\r\n");
    size_t len;
    const char *r = read_reply(c, &len, "INFO stats");
    cr_assert(memmem(r, len, "\r\nrejected_connections:", 23) && !memmem(r, len, "\r\nrejected_connections:0\r\n", 26),
              "INFO stats: %s", shown(r, len));
    conn_close(c);
    conn_close(a);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, clients_that_vanish_mid_command_or_mid_reply_do_not_stop_it)
{
    struct server s;
    kv_start(&s, 1, NULL);
    /* Half a command, then a reset. */
    for (int i = 0; i < 20; i++) {
        int fd = client_connect(s.port);
        static const char half[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc";
        send_all(fd, half, sizeof half - 1);
        reset_close(fd);
    }
    /* Large replies nobody reads, then a reset while the server is parked sending them. */
    struct conn *c = conn_open(s.port);
    char *value = malloc(1 << 20);
    cr_assert(value != NULL);
    memset(value, 'v', 1 << 20);
    send_command(c, 3, (struct bytes[]){{"SET", 3}, {"big", 3}, {value, 1 << 20}});
    EXPECT(c, "+OK\r\n", "SET big");
    free(value);
    for (int i = 0; i < 8; i++)
        cmd(c, "GET", "big", NULL);
    usleep(50 * 1000);
    reset_close(c->fd);
    free(c->buf);
    free(c);
    c = conn_open(s.port);
    conn_send_str(c, "STRLEN big\r\n");
    EXPECT(c, ":1048576\r\n", "STRLEN after the vanished clients");
    conn_close(c);
    kv_stop(&s, SIGTERM, 1, NULL, NULL);
}

Test(kv, sigint_with_clients_connected_ends_their_streams_and_exits_0_with_stats)
{
    struct server s;
    kv_start(&s, 1, NULL);
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "SET a 1\r\n");
    EXPECT(c, "+OK\r\n", "SET");
    unsigned long long keys[1];
    kv_stop(&s, SIGINT, 1, NULL, keys);
    cr_assert(keys[0] == 1, "stats line counts %llu keys, want 1", keys[0]);
    expect_end(c, "a client of a stopped server");
    conn_close(c);
}

/* ---- two loops ------------------------------------------------------------------------------------- */

Test(kv_threads, with_two_loops_commands_over_keys_of_both_shards_answer_correctly)
{
    struct server s;
    kv_start(&s, 2, NULL);
    struct conn *c = conn_open(s.port);
    enum { N = 200 };
    struct bytes argv[1 + 2 * N];
    char names[N][16], values[N][16];
    argv[0] = (struct bytes){"MSET", 4};
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "key-%d", i);
        snprintf(values[i], sizeof values[i], "value-%d", i);
        argv[1 + 2 * i] = (struct bytes){names[i], strlen(names[i])};
        argv[2 + 2 * i] = (struct bytes){values[i], strlen(values[i])};
    }
    send_command(c, 1 + 2 * N, argv);
    EXPECT(c, "+OK\r\n", "MSET of 200 keys");
    /* MGET in another order, with keys that do not exist between them. */
    argv[0] = (struct bytes){"MGET", 4};
    for (int i = 0; i < N; i++)
        argv[1 + i] = (struct bytes){names[N - 1 - i], strlen(names[N - 1 - i])};
    argv[1 + N] = (struct bytes){"missing", 7};
    send_command(c, 2 + N, argv);
    size_t len;
    const char *r = read_reply(c, &len, "MGET of 200 keys");
    char want[N * 24 + 32];
    size_t used = (size_t)sprintf(want, "*%d\r\n", N + 1);
    for (int i = 0; i < N; i++)
        used += (size_t)sprintf(want + used, "$%zu\r\n%s\r\n", strlen(values[N - 1 - i]), values[N - 1 - i]);
    used += (size_t)sprintf(want + used, "$-1\r\n");
    cr_assert(len == used && memcmp(r, want, len) == 0, "MGET: %s", shown(r, len));
    conn_send_str(c, "DBSIZE\r\nEXISTS key-0 key-1 key-1 key-199 missing\r\nDEL key-0 key-1 key-2 missing\r\nDBSIZE\r\n");
    cr_assert(read_int(c, "DBSIZE") == N);
    cr_assert(read_int(c, "EXISTS") == 4);
    cr_assert(read_int(c, "DEL") == 3);
    cr_assert(read_int(c, "DBSIZE after DEL") == N - 3);
    /* Single-key commands on either shard, from this one connection. */
    for (int i = 3; i < N; i++) {
        cmd(c, "APPEND", names[i], "!", NULL);
        cr_assert(read_int(c, "APPEND") == (long long)strlen(values[i]) + 1);
    }
    conn_close(c);
    unsigned long long keys[2];
    kv_stop(&s, SIGTERM, 2, NULL, keys);
    cr_assert(keys[0] + keys[1] == N - 3 && keys[0] > 0 && keys[1] > 0,
              "keys per shard %llu and %llu: both shards should hold some of %d", keys[0], keys[1], N - 3);
}

struct atomicity {
    uint16_t port;
    atomic_bool stop;
    atomic_int writes;
};

/* Writes 16 keys to the same value i with one MSET, for i = 1, 2, ... until told to stop. */
static void *writer(void *arg)
{
    struct atomicity *a = arg;
    struct conn *c = conn_open(a->port);
    for (int i = 1; !atomic_load(&a->stop); i++) {
        char value[16];
        snprintf(value, sizeof value, "%d", i);
        cmd(c, "MSET", "k0", value, "k1", value, "k2", value, "k3", value, "k4", value, "k5", value, "k6", value, "k7",
            value, "k8", value, "k9", value, "k10", value, "k11", value, "k12", value, "k13", value, "k14", value,
            "k15", value, NULL);
        EXPECT(c, "+OK\r\n", "MSET");
        atomic_store(&a->writes, i);
    }
    conn_close(c);
    return NULL;
}

Test(kv_threads, with_two_loops_mset_and_mget_over_both_shards_are_atomic)
{
    struct server s;
    kv_start(&s, 2, NULL);
    struct atomicity a = {.port = s.port};
    atomic_init(&a.stop, false);
    atomic_init(&a.writes, 0);
    pthread_t w;
    cr_assert(pthread_create(&w, NULL, writer, &a) == 0);
    /* Sixteen keys all fall on one of two shards once in 32,768 tries: these span both. Every MGET must
     * see one MSET whole, never keys from two. */
    struct conn *c = conn_open(s.port);
    int reads = 0, distinct = 0;
    char last[16] = "";
    /* At least 1.5 s, and on until it has seen enough to tell: on a loaded machine (the sanitizers' runs,
     * other tests' servers pinned to the same CPUs) a round trip over both loops can take 100 ms. */
    uint64_t start = mono_ns();
    for (uint64_t t = 0; t < MS(1500) || ((atomic_load(&a.writes) <= 10 || distinct <= 2) && t < MS(60000));
         t = mono_ns() - start, reads++) {
        cmd(c, "MGET", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14",
            "k15", NULL);
        size_t len;
        const char *r = read_reply(c, &len, "MGET");
        cr_assert(strncmp(r, "*16\r\n", 5) == 0, "MGET: %s", shown(r, len));
        const char *first = r + 5, *at = first;
        size_t one = reply_len(first, len - 5);
        for (int k = 1; k < 16; k++) {
            at += reply_len(at, len - (size_t)(at - r));
            cr_assert(reply_len(at, len - (size_t)(at - r)) == one && memcmp(at, first, one) == 0,
                      "MGET saw keys of two different MSETs: %s", shown(r, len));
        }
        if (strncmp(last, first, one < sizeof last ? one : sizeof last - 1) != 0) {
            snprintf(last, sizeof last, "%.*s", (int)(one < sizeof last ? one : sizeof last - 1), first);
            distinct++;
        }
    }
    atomic_store(&a.stop, true);
    pthread_join(w, NULL);
    conn_close(c);
    int writes = atomic_load(&a.writes);
    static char err[ERR_CAP];
    kv_stop(&s, SIGTERM, 2, NULL, NULL);
    memcpy(err, s.err, sizeof err);
    for (size_t i = 0; i + 1 < s.err_len; i++)
        err[i] = err[i] ? err[i] : '\n'; /* kv_stop cut it into lines */
    cr_assert(writes > 10 && distinct > 2, "%d MSETs, %d MGETs saw %d states: too few to tell; the server said:\n%s",
              writes, reads, distinct, err);
}

Test(kv_threads, with_two_loops_redis_benchmark_runs_set_and_get_without_an_error)
{
    struct server s;
    kv_start(&s, 2, NULL);
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", s.port);
    char *argv[] = {(char *)redis_program("redis-benchmark"), (char *)"-p", port_s, (char *)"-t", (char *)"set,get",
                    (char *)"-n", (char *)"20000", (char *)"-c", (char *)"20", (char *)"-P", (char *)"4",
                    (char *)"-r", (char *)"1000", (char *)"--threads", (char *)"2", (char *)"--csv", NULL};
    char out[8192], err[8192];
    int status = run_program(argv, out, sizeof out, err, sizeof err, 90000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "redis-benchmark failed: %s%s", out, err);
    /* Its CSV: a header, then "SET","<rps>",... and "GET","<rps>",...; no warning that CONFIG failed. */
    double set_rps = 0, get_rps = 0;
    const char *set_line = strstr(out, "\n\"SET\",\""), *get_line = strstr(out, "\n\"GET\",\"");
    cr_assert(set_line && get_line && sscanf(set_line, "\n\"SET\",\"%lf\"", &set_rps) == 1 &&
                  sscanf(get_line, "\n\"GET\",\"%lf\"", &get_rps) == 1 && set_rps > 0 && get_rps > 0,
              "redis-benchmark printed: %s", out);
    cr_assert(!strstr(err, "WARNING"), "redis-benchmark: %s", err);
    struct conn *c = conn_open(s.port);
    conn_send_str(c, "DBSIZE\r\n");
    long long keys = read_int(c, "DBSIZE");
    cr_assert(keys > 500 && keys <= 1000, "DBSIZE %lld after SETs over 1,000 random keys", keys);
    cmd(c, "STRLEN", "key:000000000042", NULL);
    long long len = read_int(c, "STRLEN");
    cr_assert(len == 0 || len == 3, "a key redis-benchmark set holds %lld bytes, its values are 3", len);
    conn_close(c);
    kv_stop(&s, SIGTERM, 2, NULL, NULL);
}

