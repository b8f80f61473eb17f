/*
 * The expected bytes of the weft-kv tests (kv_replies.h) are Redis's: redis-server 7.0 (persistence
 * off, one database), started here on a free loopback port, gives every recorded reply and redis-cli
 * prints every recorded output against it. Run once, not per backend: no weft is involved.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "kv_client.h"

TestSuite(kv_redis, .timeout = 120);

/* ---- the recorded replies are Redis's ---------------------------------------------------------------- */

/* redis-server with persistence off and one database, on a free port; its pid. */
static pid_t redis_server_start(uint16_t *port)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        *port = free_port();
        char port_s[8];
        snprintf(port_s, sizeof port_s, "%u", *port);
        pid_t parent = getpid();
        pid_t pid = fork();
        cr_assert(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
                _exit(127);
            int null = open("/dev/null", O_RDWR);
            dup2(null, STDOUT_FILENO);
            execl(redis_program("redis-server"), "redis-server", "--port", port_s, "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--databases", "1", "--dir", "/tmp", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 500; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(*port),
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            bool up = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
            close(fd);
            if (up)
                return pid;
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break; /* it exited: the port was taken, try another */
            usleep(10 * 1000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    cr_assert_fail("redis-server did not start");
    return -1;
}

static void redis_server_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

Test(kv_redis, redis_server_7_answers_the_recorded_replies)
{
    uint16_t port;
    pid_t pid = redis_server_start(&port);
    check_replies(port, "redis-server");
    redis_server_stop(pid);
}

Test(kv_redis, redis_cli_against_redis_server_prints_the_recorded_output)
{
    uint16_t port;
    pid_t pid = redis_server_start(&port);
    check_cli(port, "redis-server");
    redis_server_stop(pid);
}
