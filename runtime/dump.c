/*
 * weft_tasks_dump: every live task of the calling thread's loop, what it waits in and for how long,
 * and how much of its stack it has touched; what aiomonitor and tokio-console show their users.
 *
 * It costs the loop nothing until called: a park stamps the task with weft__park_clock() (the TSC on
 * x86), and the wait is read back from what the park already keeps (the interrupt function tells the
 * kind of wait, park_obj its object). Stack use comes from mincore(2) over the stack, at dump time.
 */
#include "internal.h"

#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *state_name(uint8_t s)
{
    switch (s) {
    case WEFT__CREATED: return "new";
    case WEFT__READY: return "ready";
    case WEFT__RUNNING: return "running";
    case WEFT__PARKED: return "parked";
    default: return "ended";
    }
}

/* ns since the park clock read c, on loop l (whose creation calibrates the TSC against the clock). */
static uint64_t ns_since(const weft_loop *l, uint64_t c)
{
    uint64_t now_c = weft__park_clock();
    if (now_c < c)
        return 0;
    return (uint64_t)((double)(now_c - c) * weft__park_clock_rate(l->born_clock, l->born_ns, now_c, weft__now()));
}

/* "1.23 s", "45.6 ms", "789 us" */
static void fmt_duration(uint64_t ns, char *buf, size_t len)
{
    if (ns >= 1000000000u)
        snprintf(buf, len, "%.2f s", (double)ns / 1e9);
    else if (ns >= 1000000u)
        snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%" PRIu64 " us", ns / 1000u);
}

void weft__park_info_io(const struct weft__op *op, weft__park_info *p)
{
    memset(p, 0, sizeof *p);
    p->kind = WEFT__PARK_IO;
    p->opcode = op->opcode;
    p->fd = op->fd;
    p->len = weft__opcodes[op->opcode].buf_way != BUF_NONE ? op->len : 0;
}

void weft__park_info_of(const weft_task *t, weft__park_info *p)
{
    weft__interrupt_fn in = t->interrupt;
    if (in == weft__op_interrupt) {
        weft__park_info_io(t->park_obj, p);
        return;
    }
    memset(p, 0, sizeof *p);
    p->fd = -1;
    if (in == weft__await_interrupt) {
        const weft__waiter *w = t->park_obj;
        p->kind = WEFT__PARK_AWAIT;
        p->obj = w->future;
        p->task = w->future ? weft__future_task(w->future) : NULL;
    } else if (in == weft__join_interrupt) {
        const weft__waiter *w = t->park_obj;
        p->kind = WEFT__PARK_JOIN;
        p->task = WEFT__CONTAINER(w->future, weft_task, future);
    } else if (in == weft__sleep_interrupt) {
        p->kind = WEFT__PARK_SLEEP;
    } else if (in == weft__wq_interrupt) {
        p->kind = WEFT__PARK_QUEUE;
        p->call = ((const weft__wq_node *)t->park_obj)->call;
    } else if (in == weft__any_interrupt) {
        p->kind = WEFT__PARK_ANY;
    } else if (in == weft__offload_interrupt) {
        p->kind = WEFT__PARK_OFFLOAD;
    } else if (in == weft__group_interrupt) {
        p->kind = WEFT__PARK_GROUP;
    } else {
        p->kind = WEFT__PARK_OTHER;
    }
}

void weft__park_describe(const weft__park_info *p, const char *task_label, char *buf, size_t len)
{
    int n;
    switch (p->kind) {
    case WEFT__PARK_IO:
        n = snprintf(buf, len, "%s", weft__opcodes[p->opcode].name);
        if (p->fd >= 0 && n >= 0 && (size_t)n < len)
            n += snprintf(buf + n, len - (size_t)n, " on fd %d", p->fd);
        if (weft__opcodes[p->opcode].buf_way != BUF_NONE && n >= 0 && (size_t)n < len)
            snprintf(buf + n, len - (size_t)n, " (%" PRIu64 " B)", p->len);
        break;
    case WEFT__PARK_AWAIT:
        snprintf(buf, len, "weft_await of a future%s%s%s", task_label ? ": task " : "", task_label ? task_label : "",
                 task_label ? "'s" : "");
        break;
    case WEFT__PARK_JOIN:
        snprintf(buf, len, "join of task %s", task_label ? task_label : "?");
        break;
    case WEFT__PARK_SLEEP:
        snprintf(buf, len, "weft_sleep");
        break;
    case WEFT__PARK_QUEUE:
        snprintf(buf, len, "%s", p->call ? p->call : "a lock, event, semaphore or channel");
        break;
    case WEFT__PARK_ANY:
        snprintf(buf, len, "a wait for several (weft_wait_any, weft_gather)");
        break;
    case WEFT__PARK_OFFLOAD:
        snprintf(buf, len, "weft_offload (a job on the executor)");
        break;
    case WEFT__PARK_GROUP:
        snprintf(buf, len, "its group's members");
        break;
    default:
        snprintf(buf, len, "an uninterruptible wait (a close, or a cancelled call's end)");
        break;
    }
}

/* What a parked task waits in: the park's description, and an owned future's own (an _async request,
 * an offloaded job), which only the live future can give. */
static void describe_wait(const weft_task *t, char *buf, size_t len)
{
    weft__park_info p;
    weft__park_info_of(t, &p);
    char label[64];
    weft__park_describe(&p, p.task ? weft__task_label(p.task, label, sizeof label) : NULL, buf, len);
    const weft_future *f = p.obj;
    if (p.kind == WEFT__PARK_AWAIT && f && !p.task && f->ops && f->ops->describe) {
        char what[96] = "";
        f->ops->describe(f, what, sizeof what);
        size_t n = strlen(buf);
        if (what[0] && n < len)
            snprintf(buf + n, len - n, ": %s", what);
    }
}

/* Bytes of t's stack touched so far (resident pages, counted from the top down to the lowest one);
 * a pooled stack keeps the pages an earlier task touched. 0 if mincore fails. */
static size_t stack_touched(const weft_task *t)
{
    const weft__stack *s = t->stack;
    long page = sysconf(_SC_PAGESIZE);
    if (!s || page <= 0)
        return 0;
    size_t pages = s->size / (size_t)page;
    unsigned char vec[256];
    size_t lowest = pages;
    for (size_t first = 0; first < pages; first += sizeof vec) {
        size_t n = pages - first < sizeof vec ? pages - first : sizeof vec;
        if (mincore(s->lo + first * (size_t)page, n * (size_t)page, vec) != 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (vec[i] & 1) {
                lowest = first + i;
                break;
            }
        if (lowest != pages)
            break;
    }
    return (pages - lowest) * (size_t)page;
}

int weft_tasks_dump(FILE *out)
{
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    if (!out)
        return -EINVAL;
    size_t counts[5] = {0};
    size_t n = 0;
    for (weft__link *k = l->tasks.head; k; k = k->next) {
        weft_task *t = WEFT__CONTAINER(k, weft_task, all_link);
        counts[t->state < 5 ? t->state : 4]++;
        n++;
    }
    fprintf(out,
            "weft: loop %u (%s): %zu tasks (%zu running, %zu ready, %zu parked, %zu not started, %zu ended), "
            "%zu I/O requests in flight, %zu offloaded jobs, %zu timers\n",
            l->index, l->backend->name, n, counts[WEFT__RUNNING], counts[WEFT__READY], counts[WEFT__PARKED],
            counts[WEFT__CREATED], counts[WEFT__ENDED], l->inflight, l->jobs_inflight, l->timers.len);
    for (weft__link *k = l->tasks.head; k; k = k->next) {
        weft_task *t = WEFT__CONTAINER(k, weft_task, all_link);
        char label[64], what[160] = "", since[24] = "", left[24] = "";
        weft__task_label(t, label, sizeof label);
        if (t->state == WEFT__PARKED) {
            describe_wait(t, what, sizeof what);
            fmt_duration(ns_since(l, t->parked_at), since, sizeof since);
            if (weft__timer_armed(&t->timer)) {
                uint64_t now = weft__now();
                fmt_duration(t->timer.when > now ? t->timer.when - now : 0, left, sizeof left);
            }
        }
        size_t used = stack_touched(t);
        fprintf(out, "  %-28s %s%s%s%s%s%s%s, stack %zu of %zu KiB%s\n", label, state_name(t->state),
                since[0] ? " for " : "", since, what[0] ? " in " : "", what,
                left[0] ? t->timer_reason ? ", deadline in " : ", wakes in " : "", left, used / 1024,
                t->stack ? t->stack->size / 1024 : 0, t->cancelled ? ", cancelled" : "");
    }
    fflush(out);
    return (int)n;
}
