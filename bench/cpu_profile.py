#!/usr/bin/env python3
"""Where a server's CPU goes: `perf record -e cpu-clock -g` samples classified into a few categories.

    cpu_profile.py check                      can perf sample here? (prints why not)
    cpu_profile.py classify PERF.DATA [--requests N --cpu-s S]   the breakdown of one recording, as JSON

cpu-clock is a software event (an hrtimer per CPU): it needs no hardware counters, so it works in a VM
that has none. Each sample is one period of on-CPU time of the server with its call chain. A sample is
classified by its call chain, innermost frame first: the first frame that a rule names decides. So time
in tcp_sendmsg reached through io_uring counts as the TCP stack, and io_uring's own work (its submission,
completion and poll machinery) as io_uring; spin locks, memory copies, allocators and the mitigation
thunks name no category of their own and are charged to the function that called them. A sample whose
leaf is in user space is user code: the program's own binary (the application and, for weft, the
statically linked runtime) or the libraries it calls (libc, liburing, libpython ...).

Categories (CATEGORIES below, in the order of the tables and the stacked bars):
    user-program    the server binary's own code (application + weft runtime, or the baseline loop)
    user-libs       shared libraries in user space (libc, liburing, libpython, the vDSO)
    syscall         system-call entry and exit, fd lookup, the generic read/write path (VFS)
    tcp             sockets, TCP, IP, loopback device and receive softirq
    io_uring        io_uring's own kernel work (submission, task work, completions, its poll wakeups)
    epoll           epoll's own kernel work (epoll_wait, ep_poll_callback, ready lists, epoll_ctl)
    sched           scheduler and wakeups (schedule, try_to_wake_up, wait queues, futex, context switch)
    other           everything else in the kernel (page faults, interrupts, timers, memory management)

The per-request figures scale each category's share of the samples by the server's CPU time per request
over the same window (from /proc/PID/task/*/schedstat), so the bars add up to the measured CPU per
request of that window; the share of that time the samples cover is reported as "coverage".
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

CATEGORIES = [
    ("user-program", "user: program (app + runtime)"),
    ("user-libs", "user: libraries (libc, liburing, ...)"),
    ("syscall", "syscall entry/exit, fd lookup, VFS"),
    ("tcp", "TCP/IP stack and sockets"),
    ("io_uring", "io_uring (its own kernel work)"),
    ("epoll", "epoll (its own kernel work)"),
    ("sched", "scheduler and wakeups"),
    ("other", "other kernel (faults, irqs, timers, mm)"),
]
CATEGORY_NAMES = [c for c, _ in CATEGORIES]

# Frames that name no category: charged to their caller.
TRANSPARENT = re.compile(
    r"^(_raw_spin_\w+|raw_spin_\w+|queued_spin_\w+|native_queued_spin_\w+|__raw_spin\w*|_raw_read\w*|_raw_write\w*|"
    r"preempt_count_\w+|__preempt\w*|"
    r"__x86_return_thunk|__x86_indirect_thunk_\w+|__x86_indirect_jump_thunk_\w+|srso_\w+|retbleed_\w+|"
    r"entry_untrain_ret|zen_untrain_ret|__x86_indirect_its_thunk\w*|its_return_thunk|"
    r"memcpy\w*|__memcpy\w*|memset\w*|__memset\w*|memmove\w*|__memmove\w*|rep_movs_alternative|rep_stos_alternative|"
    r"copy_user_\w+|_copy_to_user|_copy_from_user|__copy_user\w*|copy_to_user\w*|copy_from_user\w*|"
    r"_copy_to_iter|_copy_from_iter|copy_page_to_iter|copy_page_from_iter|__check_object_size|check_heap_object|"
    r"__virt_addr_valid|check_stack_object|simple_copy_to_iter|__skb_datagram_iter|skb_copy_datagram_iter|"
    r"kmem_cache_\w+|__kmem_cache_\w+|kmalloc\w*|__kmalloc\w*|kfree\w*|__kfree\w*|krealloc\w*|"
    r"__slab_\w+|slab_\w+|___slab_\w+|kvfree|kvmalloc\w*|__kvmalloc\w*|"
    r"refill_obj_stock|obj_cgroup_\w+|__memcg_\w+|memcg_\w+|mod_memcg_\w+|__mod_memcg_\w+|mem_cgroup_\w+|"
    r"__mod_lruvec\w*|mod_objcg\w*|drain_obj_stock|consume_obj_stock|"
    r"security_\w+|apparmor_\w+|bpf_lsm_\w+|selinux_\w+|__fsnotify\w*|fsnotify\w*|"
    r"rcu_read_\w+|__rcu_read_\w+|__local_bh_enable_ip|local_bh_enable|_local_bh_enable|"
    r"__put_user_\w+|__get_user_\w+|put_user\w*|get_user\w*|"
    r"ktime_get\w*|read_tsc|__x64_sys_call|x64_sys_call|__cond_resched|_cond_resched|"
    r"__list_add\w*|__list_del\w*|__rb_\w+|rb_\w+|__xa\w+|xa_\w+|__radix\w*|"
    r"__fget_files|refcount_\w+|__refcount_\w+|percpu_counter\w*|__percpu\w*)$")

# Innermost first: the first frame matching a rule decides. The order of the rules matters only for a
# frame that two of them would match.
RULES = [
    ("sched", re.compile(
        r"^(__schedule|schedule\w*|io_schedule\w*|preempt_schedule\w*|__switch_to\w*|switch_mm\w*|"
        r"finish_task_switch\w*|pick_next_\w+|__pick_next\w*|pick_task\w*|put_prev_\w+|set_next_\w+|"
        r"dequeue_task\w*|dequeue_entit\w+|enqueue_task\w*|enqueue_entity\w*|__dequeue_entity|__enqueue_entity|"
        r"update_curr\w*|update_load_avg|update_cfs\w*|"
        r"update_rq_clock\w*|update_min_vruntime|reweight_\w+|account_\w+|__account\w*|"
        r"try_to_wake_up|wake_up_\w+|__wake_up\w*|wake_q_\w+|ttwu_\w+|select_task_rq\w*|select_idle\w*|"
        r"check_preempt\w*|wakeup_preempt\w*|resched_\w+|sched_\w+|__sched_\w+|psi_\w+|"
        r"autoremove_wake_function|default_wake_function|woken_wake_function|wait_woken|prepare_to_wait\w*|"
        r"finish_wait|add_wait_queue\w*|remove_wait_queue|init_wait_entry|"
        r"futex_\w+|__futex_\w+|do_futex|__x64_sys_futex|"
        r"sock_def_readable|sock_def_wakeup|sock_def_write_space|sk_stream_write_space|"
        r"hrtimer_start_range_ns|do_nanosleep|hrtimer_nanosleep|__x64_sys_nanosleep|"
        r"raw_spin_rq_\w+|_raw_spin_rq\w*|rq_lock\w*|newidle_balance|sched_balance\w*|load_balance|"
        r"pick_eevdf|avg_vruntime|entity_eligible|place_entity|vruntime_eligible|__calc_delta\w*|"
        r"__update_load_avg\w*|update_se\w*|cpuacct_\w+|cgroup_rstat\w*|task_tick\w*|"
        r"__rseq_handle\w*|rseq_\w+|__rseq\w*|schedule_hrtimeout\w*)$")),
    ("epoll", re.compile(
        r"^(ep_\w+|__ep_\w+|do_epoll_\w+|__x64_sys_epoll_\w+|__do_sys_epoll_\w+|epoll_\w+|eventpoll_\w+|"
        r"__se_sys_epoll\w*|ep_poll_callback|reverse_path_check\w*)$")),
    ("io_uring", re.compile(
        r"^(io_(?!schedule)\w+|__io_\w+|__x64_sys_io_uring_\w+|__do_sys_io_uring_\w+|__se_sys_io_uring\w*|"
        r"tctx_task_work\w*|task_work_run|task_work_add|__io_uring\w*|io_uring_\w+|io_wq_\w+|io_wqe_\w+|"
        r"io_worker_\w+|create_io_worker)$")),
    ("tcp", re.compile(
        r"^(tcp_\w+|__tcp_\w+|tcp4_\w+|inet_\w+|__inet_\w+|inet6_\w+|ip_\w+|__ip_\w+|ipv4_\w+|ip4_\w+|"
        r"ip6_\w+|raw_local_deliver|icmp_\w+|"
        r"sock_\w+|__sock_\w+|sk_\w+|__sk_\w+|skb_\w+|__skb_\w+|___skb\w*|kfree_skb\w*|__kfree_skb\w*|"
        r"consume_skb|napi_\w+|__napi_\w+|alloc_skb\w*|__alloc_skb\w*|build_skb\w*|__build_skb\w*|"
        r"__sys_(sendto|recvfrom|sendmsg|recvmsg|accept4|connect|socket|bind|listen|shutdown|setsockopt|"
        r"getsockopt|sendmmsg|recvmmsg)|___sys_\w+|__x64_sys_(sendto|recvfrom|sendmsg|recvmsg|accept|accept4|"
        r"connect|socket|bind|listen|shutdown|setsockopt|getsockopt|sendmmsg|recvmmsg)|do_accept|__do_accept|"
        r"netif_\w+|__netif_\w+|net_rx_action|process_backlog|loopback_\w+|dev_\w+|__dev_\w+|"
        r"neigh_\w+|__neigh_\w+|nf_\w+|__nf_\w+|ipt_\w+|nft_\w+|qdisc_\w+|__qdisc_\w+|sch_direct_xmit|"
        r"validate_xmit_\w+|eth_\w+|dst_\w+|__dst_\w+|fib_\w+|__fib_\w+|rt_\w+|__rt_\w+|"
        r"lock_sock\w*|release_sock|__release_sock|bpf_skops\w*|__cgroup_bpf_run_filter_skb|"
        r"sockfd_lookup_light|move_addr_to_user|__sys_accept\w*|csum_\w+|__csum\w*|"
        r"mptcp_\w+|__mptcp\w*|raw_v4_\w+|udp_\w+|__udp\w*|skb_defer\w*|net_\w+|__net_\w+|"
        r"reqsk_\w+|inet_csk_\w+|security_sk_\w+|rps_\w+|enqueue_to_backlog|__dev_queue_xmit|"
        r"sk_filter\w*|tcp_bpf\w*|sock_recvmsg|sock_sendmsg|sock_read_iter|sock_write_iter|"
        r"sock_poll|tcp_poll|datagram_poll)$")),
    ("syscall", re.compile(
        r"^(entry_SYSCALL_64\w*|entry_SYSRETQ\w*|do_syscall_64|syscall_exit_to_user_mode\w*|"
        r"syscall_enter_from_user_mode\w*|syscall_trace_enter|syscall_exit_work|exit_to_user_mode\w*|"
        r"__exit_to_user_mode\w*|syscall_return_via_sysret|clear_bhb_loop|entry_SYSCALL_compat\w*|"
        r"int80_emulation|do_int80_syscall_32|fpregs_assert_state_consistent|switch_fpu_return|"
        r"arch_exit_to_user_mode\w*|mds_clear_cpu_buffers|x86_\w*syscall\w*|"
        r"__fdget\w*|fdget\w*|__fget\w*|fget\w*|fput\w*|__fput\w*|fd_install|__fd_install|"
        r"ksys_\w+|vfs_\w+|__vfs_\w+|rw_verify_area|do_iter_\w+|new_sync_\w+|import_iovec|__import_iovec|"
        r"import_single_range|import_ubuf|iovec_from_user|__x64_sys_(read|write|readv|writev|close|close_range|"
        r"fcntl|ioctl|pread64|pwrite64|getpid|getppid|gettid|clock_gettime|poll|ppoll|select|pselect6)|"
        r"__se_sys_\w+|__do_sys_\w+|do_sys_poll|do_poll\w*|__x64_sys_\w+|filp_close|close_fd\w*|"
        r"file_close_fd\w*|__close_fd\w*|do_fcntl|stac|clac)$")),
]


def classify_chain(frames):
    """frames: [(symbol, dso), ...] innermost first. Returns (category, the frame that decided it);
    the category is "user" for a sample in user space."""
    if not frames:
        return "other", "?"
    sym, dso = frames[0]
    if not is_kernel(dso):
        return "user", sym
    for sym, dso in frames:
        if not is_kernel(dso):
            break  # the user part of the chain of a kernel sample
        base = sym.split(".", 1)[0] if sym else ""
        if not base or base == "[unknown]" or TRANSPARENT.match(base):
            continue
        for cat, rx in RULES:
            if rx.match(base):
                return cat, sym
    return "other", frames[0][0]


def is_kernel(dso):
    """The kernel and its modules show as [kernel.kallsyms], [module]; user space as a path, [vdso] or
    [unknown] (an address perf could not map)."""
    return dso.startswith("[") and dso not in ("[vdso]", "[unknown]", "[vsyscall]")


def user_category(dso, program):
    """user-program for the server binary itself, user-libs for the rest (libc, liburing, vdso ...)."""
    if program and os.path.basename(os.path.realpath(dso)) == os.path.basename(os.path.realpath(program)):
        return "user-program"
    return "user-libs"


FRAME = re.compile(r"^\s*([0-9a-fA-F]+)\s+(.*?)\s+\((.*)\)\s*$")


def parse_script(lines):
    """Samples of `perf script -F period,ip,sym,dso` (call chains): yields (period, [(sym, dso), ...])."""
    period, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if period is not None:
                yield period, frames
            period, frames = None, []
            continue
        if line[:1] == "\t" or (period is not None and FRAME.match(line)):
            m = FRAME.match(line)
            if m:
                frames.append((m.group(2).split("+0x")[0], m.group(3)))
            continue
        head = line.strip().split()
        if head and head[0].isdigit():
            if period is not None:
                yield period, frames
            period, frames = int(head[0]), []
            # A sample without call chain has its frame on the same line.
            m = FRAME.match(" ".join(head[1:])) if len(head) > 1 else None
            if m:
                frames.append((m.group(2).split("+0x")[0], m.group(3)))
    if period is not None:
        yield period, frames


def classify_samples(samples, program=None):
    """Totals per category (periods), and the heaviest symbols of each."""
    totals = {c: 0 for c in CATEGORY_NAMES}
    syms = {c: {} for c in CATEGORY_NAMES}
    n = 0
    for period, frames in samples:
        n += 1
        cat, frame = classify_chain(frames)
        if cat == "user":
            cat = user_category(frames[0][1], program)
        totals[cat] += period
        syms[cat][frame] = syms[cat].get(frame, 0) + period
    return n, totals, syms


def breakdown(perf_data, requests, cpu_s, program=None, perf="perf"):
    """The breakdown of one recording: {"samples", "sampled_s", "coverage", "us_per_req": {cat: us},
    "share": {cat: fraction}, "top": {cat: [[sym, share], ...]}} or {"error": why}."""
    p = subprocess.run([perf, "script", "-i", perf_data, "-F", "period,ip,sym,dso"], capture_output=True,
                       text=True, errors="replace")
    if p.returncode != 0:
        return {"error": "perf script failed: " + p.stderr.strip()[-300:]}
    n, totals, syms = classify_samples(parse_script(p.stdout.splitlines()), program)
    total = sum(totals.values())
    if not n or not total:
        return {"error": "perf recorded no samples of the server"}
    sampled_s = total / 1e9
    out = {"samples": n, "sampled_s": round(sampled_s, 6), "share": {}, "us_per_req": {}, "top": {}}
    # "top": per category, the frames that decided the most samples (the leaf for user code).
    # The total per request: the server's CPU time over the window (schedstat) when given, else the samples.
    basis = cpu_s if cpu_s and cpu_s > 0 else sampled_s
    out["cpu_s"] = round(basis, 6)
    out["coverage"] = round(sampled_s / cpu_s, 3) if cpu_s else None
    out["requests"] = requests
    for c in CATEGORY_NAMES:
        share = totals[c] / total
        out["share"][c] = round(share, 5)
        if requests:
            out["us_per_req"][c] = round(share * basis * 1e6 / requests, 5)
        top = sorted(syms[c].items(), key=lambda kv: -kv[1])[:5]
        out["top"][c] = [[s, round(v / total, 5)] for s, v in top if v / total >= 0.002]
    if requests:
        out["cpu_us_per_req"] = round(basis * 1e6 / requests, 5)
    return out


def check(perf="perf"):
    """None if perf can sample cpu-clock here, else why not (a sentence for the report)."""
    if shutil.which(perf) is None:
        return "perf is not installed (apt-get install linux-perf)"
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            paranoid = int(f.read().strip())
    except (OSError, ValueError):
        paranoid = None
    if os.geteuid() != 0 and paranoid is not None and paranoid > 1:
        return ("perf_event_paranoid is %d and bench/run is not root: perf cannot sample other processes' "
                "kernel code (as root: sysctl kernel.perf_event_paranoid=1)" % paranoid)
    try:
        p = subprocess.run([perf, "record", "-q", "-e", "cpu-clock", "-c", "100000", "-g", "--no-buildid",
                            "-o", "/dev/null", "--", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return "perf record could not run: %s" % e
    if p.returncode != 0:
        return "perf record -e cpu-clock failed: %s" % (p.stderr.strip()[-300:] or "exit %d" % p.returncode)
    try:
        with open("/proc/sys/kernel/kptr_restrict") as f:
            if int(f.read().strip()) >= 2:
                return "kptr_restrict is 2: kernel symbols are hidden, the kernel's share cannot be split"
    except (OSError, ValueError):
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    c = sub.add_parser("classify")
    c.add_argument("data")
    c.add_argument("--requests", type=int, default=0)
    c.add_argument("--cpu-s", type=float, default=0.0)
    c.add_argument("--program", default=None, help="the server binary (its own samples are user-program)")
    c.add_argument("--top", action="store_true", help="also print the heaviest symbols per category")
    a = ap.parse_args()
    if a.cmd == "check":
        why = check()
        print(why or "perf can sample cpu-clock with call chains here")
        return 1 if why else 0
    out = breakdown(a.data, a.requests, a.cpu_s, a.program)
    print(json.dumps(out, indent=1 if a.top else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
