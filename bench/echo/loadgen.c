/*
 * loadgen — the echo load generator of weft's benchmarks (see the shared BENCH.md).
 *
 * One thread, one raw edge-triggered epoll loop, N TCP connections to an echo server. It sends messages
 * of S bytes and checks that every byte comes back, in order, on the connection it was sent on:
 * message k of connection i holds a pseudo-random stream seeded by (run salt, i, k), so a reply that is
 * misrouted, stale, truncated or corrupted differs from what is expected. Any mismatch, unexpected
 * byte, end of stream, reset or missing reply fails the run (exit status 1, "ok": false).
 *
 * Modes
 *   --closed      every connection keeps exactly one message outstanding: the next is sent when the
 *                 reply is complete. Latency: from the first byte written to the last byte read.
 *   --rate R      R messages per second in total, spread evenly over the connections on a fixed
 *                 schedule (message j goes to connection j mod N at t0 + j/R), whether or not replies
 *                 have come back. Latency is measured from the intended send time, so a server that
 *                 stalls is charged for every message the stall delays (no coordinated omission).
 *                 With --tick-us T the same schedule leaves in bursts, every message due within a tick
 *                 of T microseconds at its start: the server then handles a batch per wakeup instead of
 *                 waking for every message (latency is measured from the burst's time).
 *
 * Timeline: connect every connection (in batches), --warmup seconds, the measured window of --duration
 * seconds, then (with --count-syscalls) a syscall window, then a drain in which no new message is sent
 * and every outstanding reply must arrive.
 *
 * Measured window: requests are replies completed inside it; the server's CPU time is the on-CPU time
 * of every thread of the process (/proc/PID/task/TID/schedstat, nanoseconds) read at its start and end. System calls are counted in a
 * separate window right after it, with `perf stat -e raw_syscalls:sys_enter -p PID` enabled and disabled
 * through perf's control pipe (acknowledged, so the window is exact): perf's tracepoint makes every
 * system call of the server slower, so it must not overlap the window whose CPU time is reported.
 * With --perf-record FILE the same window instead samples where the server's CPU goes
 * (`perf record -e cpu-clock -c PERIOD -g -p PID -o FILE`, a software event: no hardware counters
 * needed), and the JSON gives the requests and the server's CPU time inside it, so the samples can be
 * turned into CPU time per request.
 *
 * Output: one JSON object on stdout. Progress and errors go to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../clock.h"

extern char **environ;

#define MAX_MSG (1u << 20)
#define IO_CHUNK (256u * 1024u)
#define MAX_EVENTS 1024

/* ---- payload ---------------------------------------------------------------------------------- */

static uint64_t salt;

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static inline uint64_t msg_key(uint32_t conn, uint64_t seq)
{
    return mix64(salt ^ ((uint64_t)conn << 40) ^ seq) ^ mix64(seq * 0x2545f4914f6cdd1du + conn);
}

/* Bytes [off, off+len) of the message with key: 8-byte words, word w = mix64(key + w). */
static void gen_bytes(unsigned char *out, uint64_t key, size_t off, size_t len)
{
    while (len) {
        size_t w = off / 8, in = off % 8;
        uint64_t v = mix64(key + w);
        size_t n = 8 - in < len ? 8 - in : len;
        memcpy(out, (unsigned char *)&v + in, n);
        out += n;
        off += n;
        len -= n;
    }
}

/* ---- latency histogram: log-linear, 1/128 relative width, ns ---------------------------------- */

#define H_SUB 128
#define H_BUCKETS (256 + 56 * H_SUB)

typedef struct hist {
    uint64_t count;
    uint64_t max;
    double sum;
    uint64_t b[H_BUCKETS];
} hist;

static inline unsigned h_index(uint64_t v)
{
    if (v < 256)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
    unsigned shift = e - 7;
    return 256 + (e - 8) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

static inline void h_add(hist *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

/* The middle of the bucket holding the value of rank ceil(q * count). */
static double h_quantile(const hist *h, double q)
{
    if (!h->count)
        return NAN;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            if (i < 256)
                return (double)i;
            unsigned e = (i - 256) / H_SUB + 8, m = (i - 256) % H_SUB + H_SUB, shift = e - 7;
            double lo = (double)((uint64_t)m << shift), hi = (double)((uint64_t)(m + 1) << shift);
            double mid = (lo + hi) / 2;
            return mid > (double)h->max ? (double)h->max : mid;
        }
    }
    return (double)h->max;
}

/* ---- options and state ------------------------------------------------------------------------ */

static struct {
    const char *host;
    const char *port;
    unsigned conns;
    unsigned size;
    bool closed;
    double rate;
    double warmup, duration, syscall_window, drain_timeout, connect_timeout;
    double tick_us;
    pid_t server_pid;
    bool count_syscalls;
    const char *perf_record; /* sample the server's CPU in the window instead of counting syscalls */
    unsigned long perf_period_ns;
    int cpu;
    unsigned connect_batch;
    bool quiet;
} opt = {
    .host = "127.0.0.1",
    .conns = 64,
    .size = 64,
    .closed = true,
    .warmup = 2,
    .duration = 5,
    .syscall_window = 2,
    .drain_timeout = 10,
    .connect_timeout = 60,
    .cpu = -1,
    .connect_batch = 256,
    .perf_period_ns = 100000,
};

enum { C_IDLE, C_CONNECTING, C_OPEN };

typedef struct conn {
    int fd;
    uint32_t id;
    uint8_t state;
    bool out_blocked; /* a write hit EAGAIN: wait for EPOLLOUT */
    uint32_t send_off;  /* bytes of message send_seq already written */
    uint32_t recv_off;  /* bytes of message recv_seq already received and verified */
    uint64_t send_seq;  /* messages completely written */
    uint64_t due;       /* messages that should have been written by now */
    uint64_t recv_seq;  /* messages completely received and verified */
    uint64_t sent_ns;   /* closed loop: when the outstanding message started to go out */
} conn;

enum { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_SYSCALLS, PH_DRAIN, PH_DONE };

static conn *conns;
static int epfd;
static unsigned char *wbuf, *rbuf, *ebuf;
static int phase = PH_CONNECT;
static bool sending;     /* new messages may be scheduled */
static uint64_t t0;      /* start of the load (rate schedule origin) */
static uint64_t sched_j; /* rate mode: next message of the global schedule */
static double ns_per_msg, tick_ns;
static hist lat;
static uint64_t completed_total, completed_window, verified_bytes, sent_msgs;
static char error_msg[512];
static unsigned errors;

static void fail(const char *fmt, ...)
{
    errors++;
    if (error_msg[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_msg, sizeof error_msg, fmt, ap);
    va_end(ap);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen --port P [--host H] [--conns N] [--size S] (--closed | --rate R [--tick-us T])\n"
            "               [--warmup SEC] [--duration SEC] [--server-pid PID] [--count-syscalls]\n"
            "               [--syscall-window SEC] [--perf-record FILE [--perf-period-ns NS]] [--cpu C]\n"
            "               [--connect-batch B] [--drain-timeout SEC]\n"
            "               [--quiet]\n"
            "Prints one JSON object on stdout; exit status 1 if any reply was wrong or missing.\n");
}

/* ---- server CPU time -------------------------------------------------------------------------- */

/* utime+stime of every thread of pid, in clock ticks; -1 if unreadable. */
static long long proc_cpu_ticks(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return -1;
    p++;
    /* After ')': field 3 (state) ... field 14 utime, 15 stime. */
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoull(tok, NULL, 10);
            return (long long)(utime + stime);
        }
    }
    return -1;
}

/* pid's resident set in KiB (/proc/PID/statm), or -1. */
static long long proc_rss_kib(pid_t pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return -1;
    return (long long)(resident * (unsigned long long)sysconf(_SC_PAGESIZE) / 1024);
}

/*
 * On-CPU time of every thread of pid in nanoseconds, from /proc/PID/task/TID/schedstat (its first
 * field), so a short window at a low rate is not rounded to 10 ms clock ticks; from /proc/PID/stat's
 * ticks where schedstat is missing. -1 if unreadable.
 */
static long long proc_cpu_ns(pid_t pid)
{
    char path[96], buf[128];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    long long total = 0;
    bool any = false;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        total += strtoll(buf, NULL, 10);
        any = true;
    }
    if (d)
        closedir(d);
    if (any)
        return total;
    long long ticks = proc_cpu_ticks(pid);
    long hz = sysconf(_SC_CLK_TCK);
    return ticks < 0 || hz <= 0 ? -1 : ticks * (1000000000ll / hz);
}

/* ---- perf: system calls of the server in a window --------------------------------------------- */

static struct {
    pid_t pid;
    int ctl_w, ack_r;
    char out[64];
    int acks;          /* acks received: 1 after enable, 2 after disable */
    bool disable_sent;
    uint64_t t_start, t_end;
    uint64_t req_start, req_end;
    uint64_t spawned_ns;
    char why[256];     /* why no count, if none */
    long long count;
    long long cpu_start, cpu_end; /* the server's CPU time (ns) at enable and disable */
} perf = {.pid = -1, .ctl_w = -1, .ack_r = -1, .count = -1, .cpu_start = -1, .cpu_end = -1};

static bool perf_start(void)
{
    int ctl[2], ack[2];
    if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(ack, O_CLOEXEC) < 0) {
        snprintf(perf.why, sizeof perf.why, "pipe: %s", strerror(errno));
        return false;
    }
    snprintf(perf.out, sizeof perf.out, "/tmp/loadgen-perf-%d.csv", (int)getpid());
    char ctlarg[64], pidarg[32];
    /* The child gets the pipe ends as fds 3 and 4. */
    snprintf(ctlarg, sizeof ctlarg, "fd:3,4");
    snprintf(pidarg, sizeof pidarg, "%d", (int)opt.server_pid);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, ctl[0], 3);
    posix_spawn_file_actions_adddup2(&fa, ack[1], 4);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"perf", "stat", "-D", "-1", "--control", ctlarg, "-x", ",", "-o", perf.out,
                    "-e", "raw_syscalls:sys_enter", "-p", pidarg, NULL};
    char period[32];
    snprintf(period, sizeof period, "%lu", opt.perf_period_ns);
    /* --no-buildid: perf would otherwise read every sample again at exit to note the binaries' build-ids. */
    char *rec_argv[] = {"perf", "record", "-q", "-D", "-1", "--control", ctlarg, "-e", "cpu-clock", "-c", period,
                        "-g", "--no-buildid", "-o", (char *)opt.perf_record, "-p", pidarg, NULL};
    int r = posix_spawnp(&perf.pid, "perf", &fa, NULL, opt.perf_record ? rec_argv : argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(ctl[0]);
    close(ack[1]);
    if (r != 0) {
        snprintf(perf.why, sizeof perf.why, "cannot run perf: %s", strerror(r));
        close(ctl[1]);
        close(ack[0]);
        perf.pid = -1;
        return false;
    }
    perf.ctl_w = ctl[1];
    perf.ack_r = ack[0];
    fcntl(perf.ack_r, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, perf.ack_r, &ev);
    perf.spawned_ns = now_ns();
    /* perf reads the command once it has attached; the ack says the counter is on. */
    perf.cpu_start = perf.cpu_end = -1;
    if (write(perf.ctl_w, "enable\n", 7) != 7) {
        snprintf(perf.why, sizeof perf.why, "perf control pipe: %s", strerror(errno));
        return false;
    }
    return true;
}

static void perf_on_ack(void)
{
    char buf[64];
    ssize_t n;
    while ((n = read(perf.ack_r, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n') {
                perf.acks++;
                if (perf.acks == 1) {
                    perf.t_start = now_ns();
                    perf.req_start = completed_total;
                    perf.cpu_start = proc_cpu_ns(opt.server_pid);
                } else if (perf.acks == 2) {
                    perf.t_end = now_ns();
                    perf.req_end = completed_total;
                    perf.cpu_end = proc_cpu_ns(opt.server_pid);
                }
            }
}

static void perf_disable(void)
{
    if (perf.ctl_w >= 0 && !perf.disable_sent) {
        perf.disable_sent = true;
        if (write(perf.ctl_w, "disable\n", 8) != 8)
            snprintf(perf.why, sizeof perf.why, "perf control pipe: %s", strerror(errno));
    }
}

static void perf_finish(void)
{
    if (perf.pid <= 0)
        return;
    kill(perf.pid, SIGINT);
    int st;
    waitpid(perf.pid, &st, 0);
    if (perf.ctl_w >= 0)
        close(perf.ctl_w);
    if (perf.ack_r >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, perf.ack_r, NULL);
        close(perf.ack_r);
    }
    if (opt.perf_record) {
        if (perf.acks < 2 && !perf.why[0])
            snprintf(perf.why, sizeof perf.why, "perf did not acknowledge enable/disable");
        else if (!perf.why[0] && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
                 !(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT))
            snprintf(perf.why, sizeof perf.why, "perf record exited with status %d",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return;
    }
    FILE *f = fopen(perf.out, "r");
    if (!f) {
        if (!perf.why[0])
            snprintf(perf.why, sizeof perf.why, "perf wrote no output (exit status %d)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "raw_syscalls:sys_enter")) {
            if (line[0] >= '0' && line[0] <= '9')
                perf.count = strtoll(line, NULL, 10);
            else if (!perf.why[0])
                snprintf(perf.why, sizeof perf.why, "perf: %.200s", line);
        }
    }
    fclose(f);
    unlink(perf.out);
    if (perf.count < 0 && !perf.why[0])
        snprintf(perf.why, sizeof perf.why, "perf printed no count for raw_syscalls:sys_enter");
    if (perf.acks < 2) {
        perf.count = -1;
        if (!perf.why[0])
            snprintf(perf.why, sizeof perf.why, "perf did not acknowledge enable/disable");
    }
}

/* ---- connections ------------------------------------------------------------------------------ */

static struct sockaddr_storage srv_addr;
static socklen_t srv_len;

static void resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int r = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "loadgen: %s:%s: %s\n", opt.host, opt.port, gai_strerror(r));
        exit(2);
    }
    memcpy(&srv_addr, res->ai_addr, res->ai_addrlen);
    srv_len = res->ai_addrlen;
    freeaddrinfo(res);
}

static unsigned connecting, opened, next_to_open;

static void conn_open(conn *c)
{
    c->fd = socket(srv_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail("socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = c->id};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        fail("epoll_ctl: %s", strerror(errno));
        return;
    }
    int r = connect(c->fd, (struct sockaddr *)&srv_addr, srv_len);
    if (r == 0) {
        c->state = C_OPEN;
        opened++;
    } else if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
        connecting++;
    } else {
        fail("connect (connection %u): %s", c->id, strerror(errno));
    }
}

static void open_more(void)
{
    while (!error_msg[0] && next_to_open < opt.conns && connecting < opt.connect_batch)
        conn_open(&conns[next_to_open++]);
}

/* ---- sending ---------------------------------------------------------------------------------- */

/* When message j of the global schedule is due: j/R after t0, or with --tick-us, at the start of the
 * tick that holds j/R (messages then leave in bursts, one per tick). */
static inline uint64_t due_ns(double j)
{
    double at = j * ns_per_msg;
    if (tick_ns > 0)
        at = floor(at / tick_ns) * tick_ns;
    return t0 + (uint64_t)at;
}

static inline uint64_t intended_ns(const conn *c, uint64_t seq)
{
    return due_ns((double)seq * opt.conns + c->id);
}

/* Writes what is due on c until done or the socket is full. */
static void conn_flush(conn *c)
{
    if (c->state != C_OPEN)
        return;
    while (!c->out_blocked && c->send_seq < c->due) {
        /* Lay out as many due messages as fit in one write. */
        size_t len = 0;
        uint64_t seq = c->send_seq;
        uint32_t off = c->send_off;
        while (seq < c->due && len < IO_CHUNK) {
            size_t n = opt.size - off;
            if (n > IO_CHUNK - len)
                n = IO_CHUNK - len;
            gen_bytes(wbuf + len, msg_key(c->id, seq), off, n);
            len += n;
            off += (uint32_t)n;
            if (off == opt.size) {
                seq++;
                off = 0;
            }
        }
        if (opt.closed && c->send_off == 0)
            c->sent_ns = now_ns();
        ssize_t w = send(c->fd, wbuf, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                c->out_blocked = true;
                return;
            }
            if (errno == EINTR)
                continue;
            fail("send (connection %u): %s", c->id, strerror(errno));
            return;
        }
        uint64_t pos = c->send_off + (uint64_t)w;
        c->send_seq += pos / opt.size;
        sent_msgs += pos / opt.size;
        c->send_off = (uint32_t)(pos % opt.size);
        if ((size_t)w < len)
            c->out_blocked = true; /* the kernel set SOCK_NOSPACE: an EPOLLOUT edge will follow */
    }
}

/* Rate mode: hands out every message of the global schedule that is due by now. */
static void schedule_due(uint64_t now)
{
    if (!sending)
        return;
    /* limit: the first message not yet due. */
    double elapsed = (double)(now - t0);
    uint64_t limit = tick_ns > 0 ? (uint64_t)ceil((floor(elapsed / tick_ns) + 1) * tick_ns / ns_per_msg)
                                 : (uint64_t)(elapsed / ns_per_msg) + 1;
    while (sched_j < limit && !error_msg[0]) {
        conn *c = &conns[sched_j % opt.conns];
        c->due++;
        conn_flush(c);
        sched_j++;
    }
}

static uint64_t next_due_ns(void)
{
    return due_ns((double)sched_j);
}

/* ---- receiving -------------------------------------------------------------------------------- */

static void conn_received(conn *c, const unsigned char *p, size_t n, uint64_t now)
{
    while (n) {
        if (c->recv_seq > c->send_seq || (c->recv_seq == c->send_seq && c->recv_off + n > c->send_off)) {
            fail("connection %u: received bytes that were never sent (message %" PRIu64 ", offset %u)", c->id,
                 c->recv_seq, c->recv_off);
            return;
        }
        size_t take = opt.size - c->recv_off;
        if (take > n)
            take = n;
        gen_bytes(ebuf, msg_key(c->id, c->recv_seq), c->recv_off, take);
        if (memcmp(ebuf, p, take) != 0) {
            size_t i = 0;
            while (ebuf[i] == p[i])
                i++;
            fail("connection %u: reply differs at byte %zu of message %" PRIu64 " (got 0x%02x, sent 0x%02x)",
                 c->id, c->recv_off + i, c->recv_seq, p[i], ebuf[i]);
            return;
        }
        verified_bytes += take;
        c->recv_off += (uint32_t)take;
        p += take;
        n -= take;
        if (c->recv_off == opt.size) {
            uint64_t start = opt.closed ? c->sent_ns : intended_ns(c, c->recv_seq);
            c->recv_off = 0;
            c->recv_seq++;
            completed_total++;
            if (phase == PH_MEASURE) {
                completed_window++;
                h_add(&lat, now > start ? now - start : 0);
            }
            if (opt.closed && sending)
                c->due = c->recv_seq + 1;
        }
    }
}

static void conn_readable(conn *c, uint64_t now)
{
    for (;;) {
        ssize_t r = recv(c->fd, rbuf, IO_CHUNK, 0);
        if (r > 0) {
            conn_received(c, rbuf, (size_t)r, now);
            if (error_msg[0])
                return;
            if ((size_t)r < IO_CHUNK)
                return; /* a short read drained the socket: the next data brings a new edge */
            continue;
        }
        if (r == 0) {
            fail("connection %u: server closed the connection (after %" PRIu64 " replies, %u bytes into the next)",
                 c->id, c->recv_seq, c->recv_off);
            return;
        }
        if (errno == EAGAIN)
            return;
        if (errno == EINTR)
            continue;
        fail("connection %u: recv: %s", c->id, strerror(errno));
        return;
    }
}

static void on_event(conn *c, uint32_t ev, uint64_t now)
{
    if (c->state == C_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail("connect (connection %u): %s", c->id, strerror(err));
            return;
        }
        c->state = C_OPEN;
        connecting--;
        opened++;
        if (phase != PH_CONNECT)
            conn_flush(c);
        return;
    }
    if (c->state != C_OPEN)
        return;
    if (ev & EPOLLOUT)
        c->out_blocked = false;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        conn_readable(c, now);
        if (error_msg[0])
            return;
        if (ev & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            fail("connection %u: %s", c->id, err ? strerror(err) : "hang-up");
            return;
        }
    }
    /* Closed loop: a reply just completed lets the next message go. */
    conn_flush(c);
}

/* ---- main ------------------------------------------------------------------------------------- */

static double parse_double(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= 0)) {
        fprintf(stderr, "loadgen: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v, int prec)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.*f", key, prec, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

int main(int argc, char **argv)
{
    enum { O_WARMUP = 256, O_DURATION, O_SERVER_PID, O_COUNT_SYSCALLS, O_SYSCALL_WINDOW, O_CONNECT_BATCH,
           O_DRAIN_TIMEOUT, O_CONNECT_TIMEOUT, O_PERF_RECORD, O_PERF_PERIOD };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"closed", no_argument, NULL, 'C'},
        {"rate", required_argument, NULL, 'r'},
        {"tick-us", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"duration", required_argument, NULL, O_DURATION},
        {"server-pid", required_argument, NULL, O_SERVER_PID},
        {"count-syscalls", no_argument, NULL, O_COUNT_SYSCALLS},
        {"syscall-window", required_argument, NULL, O_SYSCALL_WINDOW},
        {"perf-record", required_argument, NULL, O_PERF_RECORD},
        {"perf-period-ns", required_argument, NULL, O_PERF_PERIOD},
        {"cpu", required_argument, NULL, 'u'},
        {"connect-batch", required_argument, NULL, O_CONNECT_BATCH},
        {"drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
        {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'c': opt.conns = (unsigned)parse_double(optarg, "--conns"); break;
        case 's': opt.size = (unsigned)parse_double(optarg, "--size"); break;
        case 'C': opt.closed = true; break;
        case 'r':
            opt.rate = parse_double(optarg, "--rate");
            opt.closed = false;
            break;
        case 't': opt.tick_us = parse_double(optarg, "--tick-us"); break;
        case O_WARMUP: opt.warmup = parse_double(optarg, "--warmup"); break;
        case O_DURATION: opt.duration = parse_double(optarg, "--duration"); break;
        case O_SERVER_PID: opt.server_pid = (pid_t)parse_double(optarg, "--server-pid"); break;
        case O_COUNT_SYSCALLS: opt.count_syscalls = true; break;
        case O_SYSCALL_WINDOW: opt.syscall_window = parse_double(optarg, "--syscall-window"); break;
        case O_PERF_RECORD:
            opt.perf_record = optarg;
            opt.count_syscalls = true; /* the same window, sampled instead of counted */
            break;
        case O_PERF_PERIOD: opt.perf_period_ns = (unsigned long)parse_double(optarg, "--perf-period-ns"); break;
        case 'u': opt.cpu = (int)parse_double(optarg, "--cpu"); break;
        case O_CONNECT_BATCH: opt.connect_batch = (unsigned)parse_double(optarg, "--connect-batch"); break;
        case O_DRAIN_TIMEOUT: opt.drain_timeout = parse_double(optarg, "--drain-timeout"); break;
        case O_CONNECT_TIMEOUT: opt.connect_timeout = parse_double(optarg, "--connect-timeout"); break;
        case 'q': opt.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!opt.port || optind != argc || opt.conns == 0 || opt.conns >= (1u << 24) || opt.size == 0 ||
        opt.size > MAX_MSG || (!opt.closed && !(opt.rate > 0)) || opt.duration <= 0 || opt.connect_batch == 0) {
        usage(stderr);
        return 2;
    }
    if (opt.count_syscalls && opt.server_pid <= 0) {
        fprintf(stderr, "loadgen: --count-syscalls and --perf-record need --server-pid\n");
        return 2;
    }

    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) {
            fprintf(stderr, "loadgen: cannot pin to CPU %d: %s\n", opt.cpu, strerror(errno));
            return 2;
        }
    }
    prctl(PR_SET_TIMERSLACK, 1000UL); /* wake on time for the rate schedule */
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 32) {
        fprintf(stderr, "loadgen: %u connections need more file descriptors than the limit (%llu)\n", opt.conns,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }
    salt = mix64((uint64_t)getpid() ^ now_ns());

    resolve();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc(opt.conns, sizeof *conns);
    wbuf = malloc(IO_CHUNK);
    rbuf = malloc(IO_CHUNK);
    ebuf = malloc(IO_CHUNK);
    if (epfd < 0 || !conns || !wbuf || !rbuf || !ebuf) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 2;
    }
    for (unsigned i = 0; i < opt.conns; i++) {
        conns[i].id = i;
        conns[i].fd = -1;
    }
    ns_per_msg = opt.closed ? 0 : 1e9 / opt.rate;
    tick_ns = opt.tick_us * 1e3;

    struct epoll_event events[MAX_EVENTS];
    uint64_t start = now_ns();
    uint64_t t_connected = 0, t_measure = 0, t_measure_end = 0, t_sys_end = 0, t_drain = 0, t_end = 0;
    long long cpu_ns0 = -1, cpu_ns1 = -1;
    /* The server's memory before the first connection and with every connection open, at the end of
     * the measured window: what its connections hold (most of them idle at any moment at a fixed rate). */
    long long rss0 = opt.server_pid > 0 ? proc_rss_kib(opt.server_pid) : -1, rss1 = -1;
    uint64_t self_cpu0 = 0, self_cpu1 = 0;
    uint64_t sys_deadline = 0;

    open_more();
    while (phase != PH_DONE && !error_msg[0]) {
        uint64_t now = now_ns();
        /* Phase transitions. */
        if (phase == PH_CONNECT) {
            if (opened == opt.conns) {
                t_connected = now;
                t0 = now;
                phase = PH_WARMUP;
                sending = true;
                if (!opt.quiet)
                    fprintf(stderr, "loadgen: %u connections open in %.2f s\n", opt.conns, (now - start) / 1e9);
                if (opt.closed)
                    for (unsigned i = 0; i < opt.conns && !error_msg[0]; i++) {
                        conns[i].due = 1;
                        conn_flush(&conns[i]);
                    }
                continue;
            }
            if (now - start > (uint64_t)(opt.connect_timeout * 1e9)) {
                fail("only %u of %u connections open after %.0f s", opened, opt.conns, opt.connect_timeout);
                break;
            }
        }
        if (phase == PH_WARMUP && now >= t0 + (uint64_t)(opt.warmup * 1e9)) {
            phase = PH_MEASURE;
            t_measure = now;
            if (opt.server_pid > 0)
                cpu_ns0 = proc_cpu_ns(opt.server_pid);
            self_cpu0 = process_cpu_ns();
        }
        if (phase == PH_MEASURE && now >= t_measure + (uint64_t)(opt.duration * 1e9)) {
            t_measure_end = now;
            if (opt.server_pid > 0) {
                cpu_ns1 = proc_cpu_ns(opt.server_pid);
                rss1 = proc_rss_kib(opt.server_pid);
            }
            self_cpu1 = process_cpu_ns();
            if (opt.count_syscalls) {
                phase = PH_SYSCALLS;
                if (!perf_start())
                    phase = PH_DRAIN;
                sys_deadline = now + 10000000000u; /* for perf to attach */
            } else {
                phase = PH_DRAIN;
            }
            if (phase == PH_DRAIN)
                t_drain = now;
        }
        if (phase == PH_SYSCALLS) {
            if (perf.acks >= 1 && !perf.disable_sent && now >= perf.t_start + (uint64_t)(opt.syscall_window * 1e9))
                perf_disable();
            if (perf.acks >= 2 || now >= sys_deadline) {
                if (perf.acks < 2 && !perf.why[0])
                    snprintf(perf.why, sizeof perf.why, "perf did not start counting within 10 s");
                t_sys_end = now;
                phase = PH_DRAIN;
                t_drain = now;
            }
        }
        if (phase == PH_DRAIN) {
            if (sending) {
                sending = false;
                /* Messages due but not started are dropped; a message partly written is finished. */
                for (unsigned i = 0; i < opt.conns; i++) {
                    conn *c = &conns[i];
                    c->due = c->send_seq + (c->send_off ? 1 : 0);
                }
            }
            bool done = completed_total == sent_msgs;
            for (unsigned i = 0; i < opt.conns && done; i++)
                done = conns[i].recv_seq == conns[i].send_seq && conns[i].send_off == 0 && conns[i].recv_off == 0;
            if (done) {
                phase = PH_DONE;
                t_end = now;
                break;
            }
            if (now - t_drain > (uint64_t)(opt.drain_timeout * 1e9)) {
                uint64_t missing = 0;
                for (unsigned i = 0; i < opt.conns; i++)
                    missing += conns[i].send_seq - conns[i].recv_seq + (conns[i].send_off ? 1 : 0);
                fail("%" PRIu64 " replies still missing %.0f s after the load stopped", missing, opt.drain_timeout);
                break;
            }
        }
        if (!opt.closed)
            schedule_due(now);
        if (error_msg[0])
            break;

        /* Wait for events, or until the next scheduled send or phase change. */
        uint64_t wake = now + 100000000u; /* at least every 100 ms: phase changes */
        if (!opt.closed && sending && next_due_ns() < wake)
            wake = next_due_ns();
        if (phase == PH_WARMUP && t0 + (uint64_t)(opt.warmup * 1e9) < wake)
            wake = t0 + (uint64_t)(opt.warmup * 1e9);
        if (phase == PH_MEASURE && t_measure + (uint64_t)(opt.duration * 1e9) < wake)
            wake = t_measure + (uint64_t)(opt.duration * 1e9);
        now = now_ns();
        struct timespec ts = {0, 0};
        if (wake > now) {
            ts.tv_sec = (time_t)((wake - now) / 1000000000u);
            ts.tv_nsec = (long)((wake - now) % 1000000000u);
        }
        int n = epoll_pwait2(epfd, events, MAX_EVENTS, &ts, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_pwait2: %s", strerror(errno));
            break;
        }
        now = now_ns();
        for (int i = 0; i < n && !error_msg[0]; i++) {
            if (events[i].data.u64 == UINT64_MAX) {
                perf_on_ack();
                continue;
            }
            on_event(&conns[events[i].data.u64], events[i].events, now);
        }
        if (phase == PH_CONNECT)
            open_more();
    }
    if (!t_end)
        t_end = now_ns();
    if (phase == PH_SYSCALLS || perf.pid > 0)
        perf_disable();
    perf_finish();

    /* Closing: the server sees end of stream on each connection. */
    for (unsigned i = 0; i < opt.conns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);

    bool ok = error_msg[0] == '\0' && phase == PH_DONE;
    double secs = t_measure_end > t_measure ? (t_measure_end - t_measure) / 1e9 : NAN;
    double cpu_us = NAN, cpu_util = NAN;
    if (cpu_ns0 >= 0 && cpu_ns1 >= 0) {
        double cpu_s = (double)(cpu_ns1 - cpu_ns0) / 1e9;
        if (completed_window)
            cpu_us = cpu_s * 1e6 / (double)completed_window;
        cpu_util = cpu_s / secs;
    }
    double sys_per_req = NAN;
    if (perf.count >= 0 && perf.req_end > perf.req_start)
        sys_per_req = (double)perf.count / (double)(perf.req_end - perf.req_start);
    if (!ok && error_msg[0] == '\0')
        fail("run did not finish");

    FILE *o = stdout;
    fprintf(o, "{\"ok\":%s", ok ? "true" : "false");
    fprintf(o, ",\"mode\":\"%s\",\"conns\":%u,\"size\":%u", opt.closed ? "closed" : "rate", opt.conns, opt.size);
    json_num(o, "offered_rate", opt.closed ? NAN : opt.rate, 0);
    json_num(o, "tick_us", opt.closed ? NAN : opt.tick_us, 1);
    fprintf(o, ",\"requests\":%" PRIu64, completed_window);
    json_num(o, "seconds", secs, 4);
    json_num(o, "req_per_s", completed_window / secs, 1);
    json_num(o, "server_cpu_us_per_req", cpu_us, 4);
    json_num(o, "server_cpu_util", cpu_util, 4);
    json_num(o, "syscalls_per_req", sys_per_req, 4);
    json_num(o, "server_rss_kib", rss1 >= 0 ? (double)rss1 : NAN, 0);
    json_num(o, "server_rss_kib_per_conn", rss0 >= 0 && rss1 >= 0 ? (double)(rss1 - rss0) / opt.conns : NAN, 3);
    if (opt.perf_record) {
        fprintf(o, ",\"perf_record\":");
        json_str(o, opt.perf_record);
        fprintf(o, ",\"perf_period_ns\":%lu,\"perf_window_requests\":%" PRIu64, opt.perf_period_ns,
                perf.req_end - perf.req_start);
        json_num(o, "perf_window_seconds", perf.t_end > perf.t_start ? (perf.t_end - perf.t_start) / 1e9 : NAN, 4);
        json_num(o, "perf_window_server_cpu_s",
                 perf.cpu_start >= 0 && perf.cpu_end >= perf.cpu_start ? (perf.cpu_end - perf.cpu_start) / 1e9 : NAN, 6);
        if (perf.why[0]) {
            fprintf(o, ",\"perf_error\":");
            json_str(o, perf.why);
        }
    } else if (opt.count_syscalls) {
        fprintf(o, ",\"syscalls\":%lld,\"syscall_window_requests\":%" PRIu64, perf.count,
                perf.req_end - perf.req_start);
        json_num(o, "syscall_window_seconds", perf.t_end > perf.t_start ? (perf.t_end - perf.t_start) / 1e9 : NAN,
                 4);
        if (perf.count < 0) {
            fprintf(o, ",\"syscalls_error\":");
            json_str(o, perf.why[0] ? perf.why : "unknown");
        }
    }
    json_num(o, "p50_us", h_quantile(&lat, 0.50) / 1e3, 2);
    json_num(o, "p99_us", h_quantile(&lat, 0.99) / 1e3, 2);
    json_num(o, "p999_us", h_quantile(&lat, 0.999) / 1e3, 2);
    json_num(o, "max_us", lat.count ? lat.max / 1e3 : NAN, 2);
    json_num(o, "mean_us", lat.count ? lat.sum / lat.count / 1e3 : NAN, 2);
    fprintf(o, ",\"requests_total\":%" PRIu64 ",\"sent_total\":%" PRIu64 ",\"verified_bytes\":%" PRIu64, completed_total,
            sent_msgs, verified_bytes);
    json_num(o, "loadgen_cpu_util", secs > 0 ? (self_cpu1 - self_cpu0) / 1e9 / secs : NAN, 4);
    json_num(o, "connect_seconds", t_connected ? (t_connected - start) / 1e9 : NAN, 3);
    json_num(o, "drain_seconds", t_drain ? (t_end - t_drain) / 1e9 : NAN, 3);
    fprintf(o, ",\"errors\":%u,\"error\":", errors);
    if (error_msg[0])
        json_str(o, error_msg);
    else
        fputs("null", o);
    fputs("}\n", o);
    fflush(o);
    if (!ok)
        fprintf(stderr, "loadgen: FAILED: %s\n", error_msg);
    (void)t_sys_end;
    return ok ? 0 : 1;
}
