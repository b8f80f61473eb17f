/*
 * The trace's file: the ring of events trace.c records, as Chrome Trace Event JSON (the "JSON Object
 * Format"), which Perfetto (ui.perfetto.dev) and chrome://tracing open. Rows are threads of the
 * process in the format's terms:
 *
 *   "loop"       (the loop thread's id) each poll of the backend: "sleep" when it could wait in the
 *                kernel (nothing was ready to run), "poll" when it only looked, with what it
 *                submitted, reaped and the system calls it made; callbacks; weft_call_later's timers.
 *   a task       (a row per task, named "task 'name' (#id)") "run" while it runs, with why it
 *                stopped; then what it waited in, named as weft_tasks_dump names it ("recv on fd 5
 *                (64 B)", "weft_sleep", "weft_chan_recv", "join of task 'x' (#3)"), until woken;
 *                then "ready" until it runs again. Instants: spawned, ended (its result), its
 *                timers, and the watchdog's "stall" reports, category "stall". Its I/O requests are
 *                async spans (ph b/e, category "io") from submission to completion, named by opcode,
 *                with fd, bytes and result.
 *   "executor thread <tid>"  each job of this loop that thread ran, from start to end, with how long
 *                it waited in the queue.
 *
 * A stretch that began before the oldest event kept (the ring drops the oldest) starts at that event;
 * what is still going when the file is written ends there, marked "open". How many events were
 * dropped is in otherData and in an instant at the start of the kept stretch. Timestamps are
 * CLOCK_MONOTONIC in microseconds, so traces of several loops, or perf's, line up.
 *
 * The writer pairs what the ring holds apart (a task's stop with its wake, a request's submission
 * with its completion) in tables keyed by task id and by request, sorts the result by time and
 * prints it. It allocates; the recording never does.
 */
#include "internal.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Task rows get ids above any thread id Linux hands out (at most 2^22), so no task row is taken for a
 * thread. */
#define TASK_ROW_BASE (1u << 28)

enum { R_NONE, R_WAIT, R_READY };

/* What the writer knows of a task. */
typedef struct row {
    uint8_t state;               /* R_WAIT, R_READY: since when */
    uint64_t since;
    const weft__trace_ev *stop;  /* the stop that began its wait */
    char name[32];               /* "" if unnamed or unknown */
} row;

/* A request between its submission and its completion. */
typedef struct io_open {
    const weft__trace_ev *begin; /* NULL once completed */
    uint64_t serial;             /* the span's id in the file */
} io_open;

/* An open-addressing table of nonzero uint64 keys, with values beside it. */
typedef struct table {
    uint64_t *keys;
    size_t mask;
} table;

static bool table_init(table *t, size_t at_least, void **values, size_t value_size)
{
    size_t cap = 64;
    while (cap < 2 * at_least)
        cap *= 2;
    t->keys = calloc(cap, sizeof *t->keys);
    *values = calloc(cap, value_size);
    t->mask = cap - 1;
    return t->keys && *values;
}

/* key's slot: where it is, or the empty one where it goes (claimed for it). */
static size_t table_slot(table *t, uint64_t key)
{
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & t->mask;
    while (t->keys[i] && t->keys[i] != key)
        i = (i + 1) & t->mask;
    t->keys[i] = key;
    return i;
}

/* key's slot if it is there, else SIZE_MAX. */
static size_t table_find(const table *t, uint64_t key)
{
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & t->mask;
    while (t->keys[i]) {
        if (t->keys[i] == key)
            return i;
        i = (i + 1) & t->mask;
    }
    return SIZE_MAX;
}

/* What goes into the file, in the order of ts once sorted. */
enum form { O_RUN, O_WAIT, O_READY, O_IO_B, O_IO_E, O_POLL, O_CALLBACK, O_TIMER, O_JOB, O_STALL, O_SPAWN,
            O_END, O_DROPPED };

typedef struct out {
    uint64_t ts, dur;
    size_t seq;                 /* the order made, for a stable sort */
    uint8_t form;
    bool open;                  /* still going when the file was written */
    uint64_t task;              /* the task's row, 0 for the loop's */
    uint64_t serial;            /* a request's span id */
    const weft__trace_ev *ev;   /* what it says: a stop, a request's submission, a poll... */
    const weft__trace_ev *end;  /* a request's completion; a job's request */
} out;

typedef struct writer {
    weft_loop *l;
    FILE *f;
    out *outs;
    size_t nouts, cap_outs;
    table tasks;
    row *rows;
    table ios;
    io_open *opens;
    uint64_t serials, ends_unmatched;
    pid_t workers[64];
    size_t nworkers;
    pid_t pid;
    uint64_t clock0, ns0; /* a reading of weft__park_clock() and weft__now() taken together */
    double rate;          /* ns per tick of the clock */
} writer;

/* The ring's clock reading c in CLOCK_MONOTONIC nanoseconds. */
static uint64_t to_ns(const writer *w, uint64_t c)
{
    return c >= w->clock0 ? w->ns0 + (uint64_t)((double)(c - w->clock0) * w->rate)
                          : w->ns0 - (uint64_t)((double)(w->clock0 - c) * w->rate);
}

static row *row_of(writer *w, uint64_t task);

/* An event of the file at clock reading ts, on task's row (which is named in the file, whatever else
 * of the task the ring still holds). */
static out *emit(writer *w, uint8_t form, uint64_t ts, uint64_t task, const weft__trace_ev *ev)
{
    if (task)
        row_of(w, task);
    out *o = &w->outs[w->nouts];
    *o = (out){.ts = to_ns(w, ts), .seq = w->nouts, .form = form, .task = task, .ev = ev};
    w->nouts++;
    return o;
}

static row *row_of(writer *w, uint64_t task)
{
    return &w->rows[table_slot(&w->tasks, task)];
}

/* A stretch of a task's row: from since to ts, at most from the kept stretch's start. */
static out *emit_span(writer *w, uint8_t form, uint64_t since, uint64_t ts, uint64_t task, const weft__trace_ev *ev)
{
    out *o = emit(w, form, since, task, ev);
    o->dur = ts > since ? to_ns(w, ts) - o->ts : 0;
    return o;
}

static void io_ended(writer *w, const weft__trace_ev *begin, const weft__trace_ev *end, uint64_t ts)
{
    uint64_t serial = ++w->serials;
    emit(w, O_IO_B, begin->ts, begin->task, begin)->serial = serial;
    out *o = emit(w, O_IO_E, ts, begin->task, begin);
    o->serial = serial;
    o->end = end;
    o->open = end == NULL;
}

/* Pairs what the ring holds apart, in the order it was recorded. */
static void pair(writer *w, const weft__trace_ev *ev, uint64_t start, uint64_t *run_task, uint64_t *run_since)
{
    row *r;
    size_t slot;
    switch (ev->kind) {
    case WEFT__TR_SPAWN:
        emit(w, O_SPAWN, ev->ts, ev->task, ev);
        r = row_of(w, ev->task);
        r->state = R_READY;
        r->since = ev->ts;
        break;
    case WEFT__TR_RUN:
        r = row_of(w, ev->task);
        if (r->state != R_NONE)
            emit_span(w, r->state == R_WAIT ? O_WAIT : O_READY, r->since, ev->ts, ev->task, r->stop);
        r->state = R_NONE;
        *run_task = ev->task;
        *run_since = ev->ts;
        break;
    case WEFT__TR_STOP:
        emit_span(w, O_RUN, *run_task == ev->task ? *run_since : start, ev->ts, ev->task, ev);
        *run_task = 0;
        r = row_of(w, ev->task);
        r->since = ev->ts;
        r->stop = ev;
        r->state = ev->why == WEFT__STOP_PARKED || ev->why == WEFT__STOP_IN_PLACE ? R_WAIT
                   : ev->why == WEFT__STOP_YIELDED                                ? R_READY
                                                                                  : R_NONE;
        break;
    case WEFT__TR_WAKE:
        r = row_of(w, ev->task);
        /* A wait that began before the kept stretch starts with it, and says it does not know why. */
        emit_span(w, O_WAIT, r->state == R_WAIT ? r->since : start, ev->ts, ev->task,
                  r->state == R_WAIT ? r->stop : NULL);
        r->state = R_READY;
        r->since = ev->ts;
        break;
    case WEFT__TR_END:
        emit(w, O_END, ev->ts, ev->task, ev);
        row_of(w, ev->task)->state = R_NONE;
        break;
    case WEFT__TR_NAME:
        memcpy(row_of(w, ev->task)->name, ev->u.name, sizeof ev->u.name);
        break;
    case WEFT__TR_IO_BEGIN:
        slot = table_slot(&w->ios, ev->u.w[0]);
        w->opens[slot].begin = ev;
        break;
    case WEFT__TR_IO_END:
        slot = table_find(&w->ios, ev->u.w[0]);
        if (slot == SIZE_MAX || !w->opens[slot].begin) {
            w->ends_unmatched++; /* submitted before the kept stretch */
            break;
        }
        io_ended(w, w->opens[slot].begin, ev, ev->ts);
        w->opens[slot].begin = NULL;
        break;
    case WEFT__TR_POLL:
    case WEFT__TR_CALLBACK:
        emit_span(w, ev->kind == WEFT__TR_POLL ? O_POLL : O_CALLBACK, ev->u.w[0], ev->ts, 0, ev);
        break;
    case WEFT__TR_TIMER:
        emit(w, O_TIMER, ev->ts, ev->task, ev);
        break;
    case WEFT__TR_JOB: {
        out *o = emit_span(w, O_JOB, ev->ts, ev->u.w[1], ev->task, ev);
        /* A request the executor carries out is still open: it completes after its job lands. */
        slot = ev->u.w[3] ? table_find(&w->ios, ev->u.w[3]) : SIZE_MAX;
        o->end = slot != SIZE_MAX ? w->opens[slot].begin : NULL;
        size_t k = 0;
        while (k < w->nworkers && w->workers[k] != ev->fd)
            k++;
        if (k == w->nworkers && k < sizeof w->workers / sizeof w->workers[0])
            w->workers[w->nworkers++] = ev->fd;
        break;
    }
    default:
        break;
    }
}

static int by_time(const void *a, const void *b)
{
    const out *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- printing ---------------------------------------------------------------------------------- */

/* s as a JSON string: escapes, and bytes that are not UTF-8 as U+FFFD, so any task name keeps the
 * file valid. */
static void put_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            p++;
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc((int)c, f);
            p++;
        } else {
            int n = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : -1;
            int k = 1;
            while (n > 0 && k <= n && (p[k] & 0xc0) == 0x80)
                k++;
            if (n > 0 && k == n + 1) {
                fwrite(p, 1, (size_t)k, f);
                p += k;
            } else {
                fputs("\\ufffd", f);
                p++;
            }
        }
    }
    fputc('"', f);
}

/* Microseconds with nanoseconds after the point, exactly. */
static void put_us(FILE *f, const char *key, uint64_t ns)
{
    fprintf(f, ",\"%s\":%" PRIu64 ".%03u", key, ns / 1000, (unsigned)(ns % 1000));
}

static uint64_t row_tid(const writer *w, uint64_t task)
{
    return task ? TASK_ROW_BASE + task % (1u << 30) : (uint64_t)w->l->trace->loop_tid;
}

/* "'name' (#id)" or "#id", as weft names tasks everywhere. */
static const char *task_label(writer *w, uint64_t task, char *buf, size_t len)
{
    size_t slot = table_find(&w->tasks, task);
    const char *name = slot != SIZE_MAX ? w->rows[slot].name : "";
    if (name[0])
        snprintf(buf, len, "'%.31s' (#%" PRIu64 ")", name, task);
    else
        snprintf(buf, len, "#%" PRIu64, task);
    return buf;
}

static const char *fn_name(const void *fn, char *buf, size_t len)
{
    Dl_info info;
    if (fn && dladdr(fn, &info) && info.dli_sname)
        snprintf(buf, len, "%s()", info.dli_sname);
    else
        snprintf(buf, len, "%p", fn);
    return buf;
}

static void put_head(writer *w, const out *o, const char *ph, const char *cat, const char *name)
{
    fprintf(w->f, ",\n{\"ph\":\"%s\",\"cat\":\"%s\",\"name\":", ph, cat);
    put_str(w->f, name);
    fprintf(w->f, ",\"pid\":%d,\"tid\":%" PRIu64, (int)w->pid,
            o->form == O_JOB ? (uint64_t)o->ev->fd : row_tid(w, o->task));
    put_us(w->f, "ts", o->ts);
}

/* The end of an event with arguments: ,"args":{ ...what put_args wrote... }} */
static void put_result(FILE *f, const char *key, int64_t res)
{
    fprintf(f, "\"%s\":%" PRId64, key, res);
    if (res < 0 && res > -4096)
        fprintf(f, ",\"error\":\"%s\"", strerrorname_np((int)-res) ? strerrorname_np((int)-res) : "?");
}

/* What a stopped task waits in, in words. */
static void park_text(writer *w, const weft__trace_ev *stop, char *buf, size_t len)
{
    if (!stop) {
        snprintf(buf, len, "waiting (since before the trace's first event)");
        return;
    }
    if (stop->why == WEFT__STOP_YIELDED) {
        snprintf(buf, len, "weft_yield");
        return;
    }
    weft__park_info p = {.kind = stop->park, .opcode = stop->opcode, .fd = stop->fd, .len = stop->u.w[0],
                         .call = (const char *)(uintptr_t)stop->u.w[2]};
    if (stop->why == WEFT__STOP_IN_PLACE && !stop->u.w[0] && stop->fd < 0 && !stop->opcode) {
        snprintf(buf, len, "its own request");
        return;
    }
    char label[64];
    weft__park_describe(&p, stop->u.w[1] ? task_label(w, stop->u.w[1], label, sizeof label) : NULL, buf, len);
}

static void put_event(writer *w, const out *o)
{
    FILE *f = w->f;
    const weft__trace_ev *ev = o->ev;
    char text[160], label[64], fn[128];
    switch (o->form) {
    case O_RUN: {
        put_head(w, o, "X", "run", "run");
        put_us(f, "dur", o->dur);
        const char *then = "is still running";
        char what[128];
        if (!o->open) {
            park_text(w, ev, what, sizeof what);
            switch (ev->why) {
            case WEFT__STOP_PARKED: snprintf(text, sizeof text, "parked in %s", what); then = text; break;
            case WEFT__STOP_IN_PLACE: snprintf(text, sizeof text, "waits in place for %s", what); then = text; break;
            case WEFT__STOP_YIELDED: then = "yielded"; break;
            default: then = "ended"; break;
            }
        }
        fputs(",\"args\":{\"then\":", f);
        put_str(f, then);
        fputs("}}", f);
        return;
    }
    case O_WAIT:
    case O_READY:
        if (o->form == O_WAIT)
            park_text(w, ev, text, sizeof text);
        put_head(w, o, "X", o->form == O_WAIT ? "wait" : "ready", o->form == O_WAIT ? text : "ready");
        put_us(f, "dur", o->dur);
        fprintf(f, ",\"args\":{\"open\":%s", o->open ? "true" : "false");
        if (o->form == O_WAIT && ev && ev->why != WEFT__STOP_YIELDED && ev->park == WEFT__PARK_AWAIT)
            fprintf(f, ",\"future\":\"%p\"", (void *)(uintptr_t)ev->u.w[3]); /* which one, by address */
        fputs("}}", f);
        return;
    case O_IO_B:
    case O_IO_E:
        put_head(w, o, o->form == O_IO_B ? "b" : "e", "io", weft__opcodes[ev->opcode].name);
        fprintf(f, ",\"id\":%" PRIu64 ",\"args\":{", o->serial);
        if (o->form == O_IO_B) {
            fprintf(f, "\"fd\":%d,\"len\":%" PRIu64 ",\"call\":\"%s\",\"task\":", (int)ev->fd, ev->u.w[1],
                    ev->why ? "own" : "_async");
            put_str(f, ev->task ? task_label(w, ev->task, label, sizeof label) : "none");
        } else if (o->open) {
            fputs("\"open\":true", f);
        } else {
            put_result(f, "res", (int64_t)o->end->u.w[1]);
        }
        fputs("}}", f);
        return;
    case O_POLL:
        put_head(w, o, "X", "loop", ev->u.w[1] ? "sleep" : "poll");
        put_us(f, "dur", o->dur);
        fputs(",\"args\":{", f);
        if (ev->u.w[1] == UINT64_MAX)
            fputs("\"timeout_us\":null", f);
        else
            fprintf(f, "\"timeout_us\":%" PRIu64, ev->u.w[1] / 1000);
        fprintf(f, ",\"submitted\":%" PRIu64 ",\"reaped\":%" PRIu64 ",\"syscalls\":%" PRIu64 "}}", ev->u.w[2] >> 32,
                ev->u.w[2] & 0xffffffffu, ev->u.w[3]);
        return;
    case O_CALLBACK:
        put_head(w, o, "X", "loop", "callback");
        put_us(f, "dur", o->dur);
        fputs(",\"args\":{\"fn\":", f);
        put_str(f, fn_name((const void *)(uintptr_t)ev->u.w[1], fn, sizeof fn));
        fputs("}}", f);
        return;
    case O_TIMER:
        put_head(w, o, "i", "timer", ev->why == 0 ? "timer: sleep ended" : ev->why == 1 ? "timer: deadline passed"
                                                                                      : "timer: call_later");
        fputs(",\"s\":\"t\",\"args\":{", f);
        if (ev->why == 2) {
            fputs("\"fn\":", f);
            put_str(f, fn_name((const void *)(uintptr_t)ev->u.w[1], fn, sizeof fn));
        }
        fputs("}}", f);
        return;
    case O_JOB:
        if (ev->why == WEFT__JOB_IO)
            snprintf(text, sizeof text, "%s (blocking call)", o->end ? weft__opcodes[o->end->opcode].name : "I/O");
        put_head(w, o, "X", "job", ev->why == WEFT__JOB_IO ? text : ev->why == WEFT__JOB_ASYNC ? "weft_offload_async"
                                                                                            : "weft_offload");
        put_us(f, "dur", o->dur);
        fputs(",\"args\":{\"task\":", f);
        put_str(f, ev->task ? task_label(w, ev->task, label, sizeof label) : "none");
        put_us(f, "queued_us", ev->ts > ev->u.w[0] ? to_ns(w, ev->ts) - to_ns(w, ev->u.w[0]) : 0);
        fputc(',', f);
        put_result(f, "result", (int64_t)ev->u.w[2]);
        fputs("}}", f);
        return;
    case O_STALL:
        if (ev->task)
            snprintf(text, sizeof text, "task %s", task_label(w, ev->task, label, sizeof label));
        else
            snprintf(text, sizeof text, "callback %s", fn_name((const void *)(uintptr_t)ev->u.w[1], fn, sizeof fn));
        put_head(w, o, "i", "stall", "stall");
        fputs(",\"s\":\"t\",\"args\":{\"who\":", f);
        put_str(f, text);
        fprintf(f, ",\"running_ms\":%" PRIu64 ",\"limit_ms\":%" PRIu64 ",\"message\":", ev->u.w[0] / 1000000,
                ev->u.w[2] / 1000000);
        char message[256];
        snprintf(message, sizeof message, "%s has run for %" PRIu64 " ms without suspending: it is blocking the loop",
                 text, ev->u.w[0] / 1000000);
        put_str(f, message);
        fputs("}}", f);
        return;
    case O_SPAWN:
        put_head(w, o, "i", "task", "spawned");
        fputs(",\"s\":\"t\",\"args\":{\"by\":", f);
        put_str(f, ev->u.w[0] ? task_label(w, ev->u.w[0], label, sizeof label) : "outside any task");
        fputs("}}", f);
        return;
    case O_END:
        put_head(w, o, "i", "task", "ended");
        fputs(",\"s\":\"t\",\"args\":{", f);
        put_result(f, "result", (int64_t)ev->u.w[0]);
        fputs("}}", f);
        return;
    case O_DROPPED: {
        const weft__trace *tr = w->l->trace;
        snprintf(text, sizeof text, "%" PRIu64 " earlier events dropped (the ring holds %zu)", tr->recorded - tr->len,
                 tr->cap);
        put_head(w, o, "i", "trace", text);
        fputs(",\"s\":\"g\"}", f);
        return;
    }
    default:
        return;
    }
}

static void put_meta(writer *w, uint64_t tid, const char *what, const char *name, int sort)
{
    fprintf(w->f, ",\n{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%d,\"tid\":%" PRIu64 ",\"args\":{\"name\":", what,
            (int)w->pid, tid);
    put_str(w->f, name);
    fputs("}}", w->f);
    fprintf(w->f, ",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":%d,\"tid\":%" PRIu64
                  ",\"args\":{\"sort_index\":%d}}",
            (int)w->pid, tid, sort);
}

static void put_file(writer *w, uint64_t start, uint64_t now)
{
    weft_loop *l = w->l;
    weft__trace *tr = l->trace;
    FILE *f = w->f;
    fprintf(f, "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"weft_version\":\"%s\",\"backend\":\"%s\",\"loop\":%u",
            weft_version(), l->backend->name, l->index);
    fputs(",\"clock\":\"CLOCK_MONOTONIC, ts in microseconds\"", f);
    put_us(f, "start_us", to_ns(w, start));
    put_us(f, "written_us", to_ns(w, now));
    fprintf(f, ",\"ring_events\":%zu,\"events_recorded\":%" PRIu64 ",\"events_kept\":%zu,\"events_dropped\":%" PRIu64
               ",\"io_completions_without_submission\":%" PRIu64 ",\"stall_reports\":%" PRIu64 "}",
            tr->cap, tr->recorded, tr->len, tr->recorded - tr->len, w->ends_unmatched, tr->stalls_seen);
    fprintf(f, ",\n\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":",
            (int)w->pid);
    char text[96];
    snprintf(text, sizeof text, "weft loop %u (%s)", l->index, l->backend->name);
    put_str(f, text);
    fputs("}}", f);
    put_meta(w, (uint64_t)tr->loop_tid, "thread_name", "loop", 0);
    for (size_t i = 0; i <= w->tasks.mask; i++) {
        if (!w->tasks.keys[i])
            continue;
        char label[64];
        snprintf(text, sizeof text, "task %s", task_label(w, w->tasks.keys[i], label, sizeof label));
        put_meta(w, row_tid(w, w->tasks.keys[i]), "thread_name", text, 1 + (int)(w->tasks.keys[i] % (1u << 30)));
    }
    for (size_t k = 0; k < w->nworkers; k++) {
        snprintf(text, sizeof text, "executor thread %d", (int)w->workers[k]);
        put_meta(w, (uint64_t)w->workers[k], "thread_name", text, (1 << 30) + (int)k);
    }
    for (size_t i = 0; i < w->nouts; i++)
        put_event(w, &w->outs[i]);
    fputs("\n]}\n", f);
}

/* The file loop l writes: the path, with ".N" after it for loop N > 0 of a weft_run_cores. */
static FILE *open_file(weft_loop *l, int *err)
{
    char path[4096];
    if (l->cores && l->index)
        snprintf(path, sizeof path, "%s.%u", l->trace->path, l->index);
    else
        snprintf(path, sizeof path, "%s", l->trace->path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        *err = errno;
        if (fd >= 0)
            close(fd);
        weft__log("cannot write the trace to \"%.200s\": %s\n", path, strerror(*err));
    }
    return f;
}

int weft__trace_write(weft_loop *l)
{
    weft__trace *tr = l->trace;
    uint64_t now = weft__park_clock(), now_ns = weft__now();
    weft__trace_ev stalls[WEFT__TRACE_STALLS];
    pthread_mutex_lock(&tr->stall_lock);
    size_t nstalls = tr->stalls_seen < WEFT__TRACE_STALLS ? (size_t)tr->stalls_seen : WEFT__TRACE_STALLS;
    for (size_t i = 0; i < nstalls; i++)
        stalls[i] = tr->stalls[(tr->stall_next + WEFT__TRACE_STALLS - nstalls + i) % WEFT__TRACE_STALLS];
    pthread_mutex_unlock(&tr->stall_lock);

    writer w = {.l = l, .pid = getpid(), .clock0 = tr->origin_clock, .ns0 = tr->origin,
                .rate = weft__park_clock_rate(tr->origin_clock, tr->origin, now, now_ns)};
    size_t live = 0;
    for (weft__link *k = l->tasks.head; k; k = k->next)
        live++;
    /* Each event makes at most two lines, each open task and request two more at the end. */
    w.cap_outs = 4 * tr->len + 2 * live + nstalls + 8;
    w.outs = malloc(w.cap_outs * sizeof *w.outs);
    bool ok = w.outs && table_init(&w.tasks, tr->len + live + nstalls, (void **)&w.rows, sizeof *w.rows) &&
              table_init(&w.ios, tr->len, (void **)&w.opens, sizeof *w.opens);
    int err = ENOMEM;
    if (ok) {
        size_t first = tr->len < tr->cap ? 0 : tr->next;
        uint64_t start = tr->len ? tr->ring[first].ts : tr->origin_clock;
        if (tr->recorded > tr->len)
            emit(&w, O_DROPPED, start, 0, NULL);
        uint64_t run_task = 0, run_since = start;
        for (size_t i = 0; i < tr->len; i++)
            pair(&w, &tr->ring[(first + i) % tr->cap], start, &run_task, &run_since);
        /* What is still going ends where the file is written: the run of the task flushing, even if
         * its start fell out of the ring. */
        if (!run_task && tr->running) {
            run_task = tr->running->id;
            run_since = start;
        }
        if (run_task)
            emit_span(&w, O_RUN, run_since, now, run_task, NULL)->open = true;
        for (size_t i = 0; i <= w.tasks.mask; i++)
            if (w.tasks.keys[i] && w.rows[i].state != R_NONE)
                emit_span(&w, w.rows[i].state == R_WAIT ? O_WAIT : O_READY, w.rows[i].since, now, w.tasks.keys[i],
                          w.rows[i].stop)->open = true;
        for (size_t i = 0; i <= w.ios.mask; i++)
            if (w.ios.keys[i] && w.opens[i].begin)
                io_ended(&w, w.opens[i].begin, NULL, now);
        for (size_t i = 0; i < nstalls; i++)
            emit(&w, O_STALL, stalls[i].ts, stalls[i].task, &stalls[i]);
        /* Names: an ended task's came with its end; a live task's is read from it. */
        for (weft__link *k = l->tasks.head; k; k = k->next) {
            weft_task *t = WEFT__CONTAINER(k, weft_task, all_link);
            size_t slot = table_find(&w.tasks, t->id);
            if (slot != SIZE_MAX)
                memcpy(w.rows[slot].name, t->name, sizeof w.rows[slot].name);
        }
        qsort(w.outs, w.nouts, sizeof *w.outs, by_time);
        w.f = open_file(l, &err);
        if (w.f) {
            put_file(&w, start, now);
            ok = !ferror(w.f);
            err = errno;
            if (fclose(w.f) != 0 && ok) {
                ok = false;
                err = errno;
            }
            if (!ok)
                weft__log("writing the trace to \"%.200s\" failed: %s\n", tr->path, strerror(err));
        } else {
            ok = false;
        }
    } else {
        weft__log("no memory to write the trace of %zu events\n", tr->len);
    }
    free(w.outs);
    free(w.tasks.keys);
    free(w.rows);
    free(w.ios.keys);
    free(w.opens);
    return ok ? (int)(w.nouts < INT32_MAX ? w.nouts : INT32_MAX) : -err;
}
