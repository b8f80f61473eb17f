/*
 * weft-soak: a checksummed TCP echo soak on loopback, run for a set time.
 *
 *   weft-soak [--seconds N] [--connections N] [--backend io_uring|epoll] [--sample-every S]
 *
 * Two processes, each with its own weft loop on the chosen backend (WEFT_BACKEND, or --backend), so
 * that each end stays within the 20,000 fds a process may open here:
 *   - the server (this process): four listeners (127.0.0.1 to 127.0.0.4, so the connections' 4-tuples
 *     spread over more than one destination), an accept task per listener and a task per connection,
 *     which checks every message it receives and echoes it back;
 *   - the client (a forked child): --connections tasks (default 10,000), each connecting, sending
 *     messages of random size (1 B to 64 KiB, log-uniform) and checking their echo, then leaving by a
 *     close, a reset (SO_LINGER 0 + close) between messages, or a reset in the middle of a message,
 *     and connecting again, until the time is up.
 *
 * A message is a 24-byte header (magic, payload length, the seed its payload is drawn from, the
 * payload's FNV-1a checksum) and the payload. The server recomputes the checksum of what it receives;
 * the client compares the echo byte for byte with the payload it sent, and its checksum too. Bytes are
 * counted only once verified. A connection the client did not reset must never end early, and no
 * message may fail its check: any loss or corruption fails the run.
 *
 * Every --sample-every seconds (default 2) the server samples its own RSS and open fds. After the
 * warm-up (a sixth of the run, at least 10 s, and until the live connections stop rising), every sample
 * must be within 5% of their mean: memory and fds stay flat. After the client has gone, the server's fds must be back to what they were before
 * the first connection.
 *
 * The report goes to stdout; the exit status is 0 only when nothing was lost, corrupted or leaked and
 * nothing grew.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define MS(x) ((uint64_t)(x) * 1000000ull)
#define SEC(x) ((uint64_t)(x) * 1000000000ull)

#define LISTENERS 4
#define MAGIC 0x57454654u /* "WEFT" */
#define CHUNK 8192
#define MAX_PAYLOAD 65536
#define MAX_SAMPLES 4096

typedef struct header {
    uint32_t magic;
    uint32_t len;
    uint64_t seed;
    uint64_t sum;
} header;

static struct {
    unsigned seconds;
    unsigned connections;
    unsigned sample_every;
} opt = {60, 10000, 2};

/* ---- payloads: drawn from a seed, checksummed with FNV-1a ------------------------------------------ */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The next n bytes of the payload stream of state *s. */
static void payload_fill(uint64_t *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = xorshift(s);
        memcpy(out + i, &v, n - i < 8 ? n - i : 8);
    }
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_START 0xcbf29ce484222325ull

/* Log-uniform in [1, 65536]: mostly small messages, some large. */
static uint32_t message_len(uint64_t *rng)
{
    unsigned bits = (unsigned)(xorshift(rng) % 17); /* 0..16 */
    uint64_t lo = 1ull << (bits ? bits - 1 : 0), hi = 1ull << bits;
    uint64_t len = lo + xorshift(rng) % (hi - lo + 1);
    return (uint32_t)(len > MAX_PAYLOAD ? MAX_PAYLOAD : len);
}

static uint64_t payload_sum(uint64_t seed, uint32_t len)
{
    uint64_t s = seed, h = FNV_START;
    unsigned char chunk[CHUNK];
    for (uint32_t done = 0; done < len;) {
        size_t n = len - done < CHUNK ? len - done : CHUNK;
        payload_fill(&s, chunk, n);
        h = fnv1a(h, chunk, n);
        done += (uint32_t)n;
    }
    return h;
}

/* ---- measuring the process ----------------------------------------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long size, resident;
    int got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return got == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

/* ---- the server ------------------------------------------------------------------------------------- */

static struct {
    uint64_t accepted, messages, bytes_verified, corrupt, resets, clean_ends, bad_ends, accept_errors;
    uint64_t live, peak_live;
    bool stopping;
} srv;

static struct {
    double t[MAX_SAMPLES];
    long rss[MAX_SAMPLES];
    int fds[MAX_SAMPLES];
    uint64_t live[MAX_SAMPLES];
    unsigned n;
} samples;

static bool is_reset(ssize_t r)
{
    return r == -ECONNRESET || r == -EPIPE;
}

/*
 * Receives exactly len bytes: len; 0 for an end of stream before the first byte; -EPROTO for one
 * after it; else the error, even after some bytes (weft_recv_exact would return the count and the
 * kernel would report the reset only once, to the call that consumed it).
 */
static ssize_t recv_full(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = weft_recv(fd, (char *)buf + done, len - done, 0);
        if (r < 0)
            return r;
        if (r == 0)
            return done ? -EPROTO : 0;
        done += (size_t)r;
    }
    return (ssize_t)len;
}

/* Sends all of buf: len, or the error even after some bytes. */
static ssize_t send_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = weft_send(fd, (const char *)buf + done, len - done, 0);
        if (r < 0)
            return r;
        done += (size_t)r;
    }
    return (ssize_t)len;
}

/* How a connection ended, from the call that ended it. */
static void count_end(ssize_t r)
{
    if (r == 0)
        srv.clean_ends++;
    else if (is_reset(r))
        srv.resets++;
    else
        srv.bad_ends++; /* cut short without a reset (-EPROTO), or an error no client causes */
}

/* Checks every message of one connection and echoes it back. */
static intptr_t serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char chunk[CHUNK];
    for (;;) {
        header h;
        ssize_t r = recv_full(fd, &h, sizeof h);
        if (r != (ssize_t)sizeof h) {
            count_end(r);
            break;
        }
        if (h.magic != MAGIC || h.len == 0 || h.len > MAX_PAYLOAD) {
            srv.corrupt++;
            break;
        }
        r = send_full(fd, &h, sizeof h);
        if (r != (ssize_t)sizeof h) {
            count_end(r);
            break;
        }
        uint64_t sum = FNV_START;
        uint32_t done = 0;
        while (done < h.len) {
            size_t want = h.len - done < CHUNK ? h.len - done : CHUNK;
            r = weft_recv(fd, chunk, want, 0);
            if (r <= 0) {
                count_end(r == 0 ? -EPROTO : r);
                break;
            }
            sum = fnv1a(sum, chunk, (size_t)r);
            ssize_t s = send_full(fd, chunk, (size_t)r);
            if (s != r) {
                count_end(s);
                r = -1;
                break;
            }
            done += (uint32_t)r;
        }
        if (done < h.len)
            break;
        if (sum != h.sum) {
            srv.corrupt++;
            break;
        }
        srv.messages++;
        srv.bytes_verified += h.len;
    }
    weft_close(fd);
    srv.live--;
    return 0;
}

static intptr_t accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    while (!srv.stopping) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (fd == -ECANCELED)
                break;
            srv.accept_errors++;
            continue;
        }
        srv.accepted++;
        if (++srv.live > srv.peak_live)
            srv.peak_live = srv.live;
        weft_task *t = weft_spawn(serve_connection, (void *)(intptr_t)fd);
        if (!t) {
            srv.bad_ends++;
            srv.live--;
            weft_close(fd);
            continue;
        }
        weft_detach(t);
    }
    return 0;
}

static intptr_t sample_run(void *arg)
{
    int *fds = arg;
    *fds = count_fds();
    return 0;
}

static uint64_t start_ns;

static void sample_take(void)
{
    if (samples.n >= MAX_SAMPLES)
        return;
    int fds = -1;
    weft_offload(sample_run, &fds); /* 10,000 directory entries: not on the loop */
    unsigned i = samples.n++;
    samples.t[i] = (double)(weft_now() - start_ns) / 1e9;
    samples.rss[i] = rss_kib();
    samples.fds[i] = fds;
    samples.live[i] = srv.live;
}

/* ---- the client (a child process) -------------------------------------------------------------------- */

typedef struct client_stats {
    uint64_t connects, connect_failures, messages, bytes_verified, bytes_sent, corrupt, lost;
    uint64_t resets_between, resets_mid, closes, stalls, unexpected;
    int first_error;
    char first_error_what[64];
} client_stats;

static client_stats cli;
static uint16_t ports[LISTENERS];
static bool client_stopping;
static unsigned client_live;

static void client_error(const char *what, ssize_t r)
{
    cli.unexpected++;
    if (!cli.first_error) {
        cli.first_error = r < 0 ? (int)r : -EIO;
        snprintf(cli.first_error_what, sizeof cli.first_error_what, "%s", what);
    }
}

static void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    weft_close(fd);
}

/* Sends a message and checks its echo. 1: verified; 0: the connection failed (counted); */
static int one_message(int fd, uint64_t *rng, bool cut_short)
{
    header h = {.magic = MAGIC, .len = message_len(rng), .seed = xorshift(rng)};
    h.sum = payload_sum(h.seed, h.len);
    unsigned char chunk[CHUNK], echo[CHUNK];
    uint32_t cut = cut_short ? (uint32_t)(xorshift(rng) % (sizeof h + h.len)) : UINT32_MAX;
    if (cut < sizeof h) {
        /* A reset in the middle of the header. */
        weft_send_all(fd, &h, cut);
        return -1;
    }
    ssize_t r = weft_send_all(fd, &h, sizeof h);
    if (r != (ssize_t)sizeof h) {
        client_error("send header", r);
        return 0;
    }
    uint64_t s = h.seed;
    for (uint32_t done = 0; done < h.len;) {
        size_t n = h.len - done < CHUNK ? h.len - done : CHUNK;
        payload_fill(&s, chunk, n);
        if (cut != UINT32_MAX && done + n >= cut - sizeof h) {
            weft_send_all(fd, chunk, cut - sizeof h - done); /* the prefix, then the reset */
            return -1;
        }
        r = weft_send_all(fd, chunk, n);
        if (r != (ssize_t)n) {
            client_error("send payload", r);
            return 0;
        }
        cli.bytes_sent += n;
        done += (uint32_t)n;
    }
    header back;
    r = weft_recv_exact(fd, &back, sizeof back);
    if (r != (ssize_t)sizeof back) {
        if (r == -ETIMEDOUT)
            cli.stalls++;
        cli.lost++;
        client_error("recv echo header", r);
        return 0;
    }
    if (memcmp(&back, &h, sizeof h) != 0) {
        cli.corrupt++;
        return 0;
    }
    s = h.seed;
    uint64_t sum = FNV_START;
    for (uint32_t done = 0; done < h.len;) {
        size_t n = h.len - done < CHUNK ? h.len - done : CHUNK;
        payload_fill(&s, chunk, n);
        r = weft_recv_exact(fd, echo, n);
        if (r != (ssize_t)n) {
            if (r == -ETIMEDOUT)
                cli.stalls++;
            cli.lost++;
            client_error("recv echo payload", r);
            return 0;
        }
        if (memcmp(echo, chunk, n) != 0) {
            cli.corrupt++;
            return 0;
        }
        sum = fnv1a(sum, echo, n);
        done += (uint32_t)n;
    }
    if (sum != h.sum) {
        cli.corrupt++;
        return 0;
    }
    cli.messages++;
    cli.bytes_verified += h.len;
    return 1;
}

static intptr_t client_connection(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    char host[16];
    while (!client_stopping) {
        unsigned which = (unsigned)(xorshift(&rng) % LISTENERS);
        snprintf(host, sizeof host, "127.0.0.%u", which + 1);
        int fd = weft_tcp_connect(host, ports[which]);
        if (fd < 0) {
            cli.connect_failures++;
            if (weft_sleep(MS(10) + xorshift(&rng) % MS(100)) < 0)
                break;
            continue;
        }
        cli.connects++;
        unsigned messages = 1 + (unsigned)(xorshift(&rng) % 40);
        unsigned ending = (unsigned)(xorshift(&rng) % 10); /* 0-5 close, 6-7 reset between, 8-9 reset mid-message */
        bool failed = false;
        for (unsigned m = 0; m < messages && !client_stopping; m++) {
            bool cut = ending >= 8 && m + 1 == messages;
            /* A message that takes 30 s has stalled: fail it rather than hang. */
            weft_deadline_push(weft_now() + SEC(30));
            int r = one_message(fd, &rng, cut);
            weft_deadline_pop();
            if (r < 0) {
                cli.resets_mid++;
                reset_close(fd);
                fd = -1;
                break;
            }
            if (r == 0) {
                failed = true;
                break;
            }
        }
        if (fd < 0)
            continue;
        if (failed || ending < 6 || client_stopping) {
            cli.closes += !failed;
            weft_close(fd);
        } else {
            cli.resets_between++;
            reset_close(fd);
        }
    }
    client_live--;
    return 0;
}

static intptr_t client_main(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < opt.connections; i++) {
        weft_task *t = weft_spawn(client_connection, (void *)(uintptr_t)(i + 1));
        if (!t) {
            client_error("spawn", -errno);
            break;
        }
        client_live++;
        weft_detach(t);
        if (i % 256 == 255)
            weft_yield(); /* let the first ones connect while the rest are made */
    }
    weft_sleep(SEC(opt.seconds));
    client_stopping = true;
    /* Each connection finishes its message and closes; a stalled one gives up at its deadline. */
    uint64_t give_up = weft_now() + SEC(60);
    while (client_live && weft_now() < give_up)
        weft_sleep(MS(20));
    if (client_live)
        client_error("connections still open after the end", -ETIMEDOUT);
    return 0;
}

static int client_process(int report_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    intptr_t result;
    int rc = weft_run(client_main, NULL, &result);
    if (rc < 0) {
        fprintf(stderr, "weft-soak client: weft_run: %s\n", weft_strerror(rc));
        cli.unexpected++;
    }
    ssize_t w = write(report_fd, &cli, sizeof cli);
    return w == (ssize_t)sizeof cli ? 0 : 1;
}

/* ---- running both, and the report ------------------------------------------------------------------- */

static int listeners[LISTENERS];
static pid_t client_pid;
static int report_fd;
static int fds_before_clients;
static client_stats client_result;
static bool client_reported;
static int client_status = -1;

static intptr_t reap_client(void *arg)
{
    (void)arg;
    ssize_t n = read(report_fd, &client_result, sizeof client_result);
    client_reported = n == (ssize_t)sizeof client_result;
    waitpid(client_pid, &client_status, 0);
    return 0;
}

static intptr_t server_main(void *arg)
{
    (void)arg;
    start_ns = weft_now();
    weft_task *acceptors[LISTENERS];
    for (int i = 0; i < LISTENERS; i++)
        acceptors[i] = weft_spawn(accept_loop, (void *)(intptr_t)listeners[i]);
    /* The client's report arrives when it ends: a blocking read, so on the executor. */
    weft_future *client_done = weft_offload_async(reap_client, NULL);
    uint64_t end = start_ns + SEC(opt.seconds);
    while (weft_now() < end && !weft_future_done(client_done)) {
        sample_take();
        weft_sleep(SEC(opt.sample_every));
    }
    sample_take();
    /* The client ends its connections; the server's handlers follow them. */
    weft_deadline_push(weft_now() + SEC(120));
    weft_await(client_done);
    weft_deadline_pop();
    weft_future_free(client_done);
    uint64_t give_up = weft_now() + SEC(30);
    while (srv.live && weft_now() < give_up)
        weft_sleep(MS(20));
    srv.stopping = true;
    for (int i = 0; i < LISTENERS; i++) {
        weft_cancel(acceptors[i]);
        weft_join(acceptors[i]);
    }
    return 0;
}

static bool flat(const char *what, const double *v, unsigned from, unsigned n, char *verdict, size_t cap)
{
    if (n <= from + 1) {
        snprintf(verdict, cap, "%s: too few samples after warm-up", what);
        return false;
    }
    double mean = 0, lo = v[from], hi = v[from];
    for (unsigned i = from; i < n; i++) {
        mean += v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    mean /= n - from;
    double dev_hi = (hi - mean) / mean * 100, dev_lo = (mean - lo) / mean * 100;
    bool ok = dev_hi <= 5.0 && dev_lo <= 5.0;
    snprintf(verdict, cap, "%s after warm-up: mean %.0f, min %.0f (-%.1f%%), max %.0f (+%.1f%%), first %.0f, last %.0f: %s",
             what, mean, lo, dev_lo, hi, dev_hi, v[from], v[n - 1], ok ? "flat" : "NOT FLAT (over 5%)");
    return ok;
}

static void usage(void)
{
    fprintf(stderr, "usage: weft-soak [--seconds N] [--connections N] [--backend io_uring|epoll] [--sample-every S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--seconds") == 0)
            opt.seconds = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--connections") == 0)
            opt.connections = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--sample-every") == 0)
            opt.sample_every = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--backend") == 0)
            setenv("WEFT_BACKEND", argv[++i], 1);
        else
            usage();
    }
    if (!opt.seconds || !opt.connections || !opt.sample_every)
        usage();
    signal(SIGPIPE, SIG_IGN);
    /* Output goes to a pipe under tests/run: line-buffer it so the report is never stuck in a buffer. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct rlimit nofile;
    getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur < opt.connections + 1000) {
        fprintf(stderr, "weft-soak: %u connections need more than the %llu fds ulimit -n allows\n", opt.connections,
                (unsigned long long)nofile.rlim_cur);
        return 2;
    }
    for (int i = 0; i < LISTENERS; i++) {
        char host[16];
        snprintf(host, sizeof host, "127.0.0.%d", i + 1);
        listeners[i] = weft_tcp_listen(host, 0, 4096, 0);
        if (listeners[i] < 0) {
            fprintf(stderr, "weft-soak: listen on %s: %s\n", host, weft_strerror(listeners[i]));
            return 2;
        }
        struct sockaddr_in addr;
        socklen_t len = sizeof addr;
        getsockname(listeners[i], (struct sockaddr *)&addr, &len);
        ports[i] = ntohs(addr.sin_port);
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0)
        return 2;
    fflush(NULL);
    client_pid = fork();
    if (client_pid < 0)
        return 2;
    if (client_pid == 0) {
        close(pipe_fds[0]);
        for (int i = 0; i < LISTENERS; i++)
            close(listeners[i]);
        _exit(client_process(pipe_fds[1]));
    }
    close(pipe_fds[1]);
    report_fd = pipe_fds[0];

    weft_loop *loop = weft_loop_new(NULL);
    if (!loop) {
        fprintf(stderr, "weft-soak: weft_loop_new: %s\n", strerror(errno));
        kill(client_pid, SIGKILL);
        return 2;
    }
    const char *backend = weft_loop_backend(loop);
    fds_before_clients = count_fds();
    intptr_t result;
    int rc = weft_loop_run(loop, server_main, NULL, &result);
    weft_stats st;
    weft_loop_stats(loop, &st);
    int fds_after = count_fds();
    weft_loop_free(loop);
    close(report_fd);
    for (int i = 0; i < LISTENERS; i++)
        close(listeners[i]);

    /* ---- the report ---- */
    const client_stats *c = &client_result;
    printf("weft-soak: backend %s, %u s, %u concurrent connections (client and server in separate processes)\n",
           backend, opt.seconds, opt.connections);
    printf("  client: %" PRIu64 " connections made, %" PRIu64 " connect failures (retried), %" PRIu64
           " closes, %" PRIu64 " resets between messages, %" PRIu64 " resets mid-message\n",
           c->connects, c->connect_failures, c->closes, c->resets_between, c->resets_mid);
    printf("  client: %" PRIu64 " messages echoed and verified, %" PRIu64 " bytes verified (%.1f MiB/s each way)\n",
           c->messages, c->bytes_verified, (double)c->bytes_verified / (1 << 20) / opt.seconds);
    printf("  client: %" PRIu64 " corrupt, %" PRIu64 " lost, %" PRIu64 " stalled, %" PRIu64 " unexpected errors%s%s%s\n",
           c->corrupt, c->lost, c->stalls, c->unexpected, c->first_error ? " (first: " : "",
           c->first_error ? c->first_error_what : "", c->first_error ? ")" : "");
    printf("  server: %" PRIu64 " accepted (peak %" PRIu64 " at once), %" PRIu64 " messages verified, %" PRIu64
           " bytes verified, %" PRIu64 " corrupt\n",
           srv.accepted, srv.peak_live, srv.messages, srv.bytes_verified, srv.corrupt);
    printf("  server: %" PRIu64 " connections ended cleanly, %" PRIu64 " by a client reset, %" PRIu64
           " badly (cut short without a reset), %" PRIu64 " accept errors, %" PRIu64 " accept backoffs\n",
           srv.clean_ends, srv.resets, srv.bad_ends, srv.accept_errors, st.accept_backoffs);
    printf("  server loop: %" PRIu64 " tasks spawned, %" PRIu64 " switches, %" PRIu64 " submissions, %" PRIu64
           " completions, %" PRIu64 " syscalls, %" PRIu64 " stacks mapped, %" PRIu64 " cq overflows\n",
           st.tasks_spawned, st.switches, st.submissions, st.completions, st.syscalls, st.stacks_mapped,
           st.cq_overflows);
    printf("  samples (s: RSS MiB, open fds, live connections):\n");
    for (unsigned i = 0; i < samples.n; i++)
        printf("    %6.1f: %7.1f MiB %6d fds %6" PRIu64 " conns\n", samples.t[i], samples.rss[i] / 1024.0, samples.fds[i],
               samples.live[i]);

    /* The warm-up lasts a sixth of the run (at least 10 s), and beyond that until the live connections
     * stop rising: a loaded machine can stretch the client's ramp to its full count past the fixed time
     * (14 s was seen), and a server still taking on connections is not meant to be flat yet. */
    unsigned warm = 0;
    double warm_s = opt.seconds / 6.0 < 10 ? 10 : opt.seconds / 6.0;
    while (warm < samples.n &&
           (samples.t[warm] < warm_s || (warm > 0 && samples.live[warm] > samples.live[warm - 1])))
        warm++;
    /* The last sample is taken as the client winds down; leave it out of the flatness check. */
    unsigned upto = samples.n > 0 ? samples.n - 1 : 0;
    double rss[MAX_SAMPLES], fds[MAX_SAMPLES];
    for (unsigned i = 0; i < samples.n; i++) {
        rss[i] = (double)samples.rss[i];
        fds[i] = samples.fds[i];
    }
    char verdict[256];
    bool rss_flat = flat("RSS KiB", rss, warm, upto, verdict, sizeof verdict);
    printf("  %s\n", verdict);
    bool fds_flat = flat("open fds", fds, warm, upto, verdict, sizeof verdict);
    printf("  %s\n", verdict);
    printf("  server fds: %d before the first connection, %d after the last\n", fds_before_clients, fds_after);

    bool ok = true;
    const char *why[16];
    int nwhy = 0;
#define FAIL_IF(cond, text)                                                                                  \
    do {                                                                                                     \
        if (cond) {                                                                                          \
            ok = false;                                                                                      \
            why[nwhy++] = text;                                                                              \
        }                                                                                                    \
    } while (0)
    FAIL_IF(rc != 0, "the server loop did not run");
    FAIL_IF(!client_reported, "the client sent no report");
    FAIL_IF(client_status != 0, "the client did not exit cleanly");
    FAIL_IF(c->corrupt || srv.corrupt, "corruption");
    FAIL_IF(c->lost || srv.bad_ends, "loss");
    FAIL_IF(c->unexpected, "unexpected client errors");
    FAIL_IF(c->messages == 0, "no message verified");
    FAIL_IF(srv.messages < c->messages, "the server verified fewer messages than the client");
    FAIL_IF(srv.accepted < c->connects, "the server accepted fewer connections than the client made");
    FAIL_IF(!rss_flat, "RSS grew or shrank over 5%");
    FAIL_IF(!fds_flat, "open fds grew or shrank over 5%");
    FAIL_IF(fds_after != fds_before_clients, "fds leaked");
    FAIL_IF(srv.live != 0, "connections still open on the server");
    if (ok) {
        printf("weft-soak: PASS (%s)\n", backend);
        return 0;
    }
    printf("weft-soak: FAIL (%s):", backend);
    for (int i = 0; i < nwhy; i++)
        printf("%s %s", i ? ";" : "", why[i]);
    printf("\n");
    return 1;
}
