/* proxy.c -- a small TCP proxy for the fault suite: one loopback listener
 * forwarding every connection to one target, whose behaviour a control file
 * switches between pass, stall, drop and reset.
 *
 *   fault_proxy LISTEN_PORT TARGET_HOST TARGET_PORT CONTROL_FILE
 *
 * The control file holds "<seq> <mode>"; a new seq is applied within about
 * 50 ms and acknowledged by writing "<seq>" to CONTROL_FILE.ack.  Modes:
 *   pass   forward both ways (the default)
 *   stall  forward nothing either way and accept no new connection (the
 *          kernel still completes their handshakes), keep every socket open:
 *          a silent network, as a hung middlebox or a dropped route shows it
 *   drop   close every connection (FIN both ways), then pass
 *   reset  close every connection with RST (SO_LINGER 0), then pass
 * SIGTERM or SIGINT ends it. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 64
#define BUF_SIZE 65536

typedef struct {
    int fd;
    char buf[BUF_SIZE]; /* bytes read from this side, not yet written to the other */
    size_t len;
    bool eof;
} side_t;

typedef struct {
    bool used;
    side_t s[2]; /* 0: client, 1: server */
} pair_t;

static pair_t pairs[MAX_PAIRS];
static volatile sig_atomic_t stop_now;

static void on_signal(int sig)
{
    stop_now = sig;
}

static void say(const char *what, const char *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "proxy %ld.%03ld ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
    fprintf(stderr, "%s %s\n", what, arg);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void close_pair(pair_t *p, bool rst)
{
    for (int i = 0; i < 2; i++) {
        if (p->s[i].fd < 0)
            continue;
        if (rst) {
            struct linger l = {1, 0};
            setsockopt(p->s[i].fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(p->s[i].fd);
        p->s[i].fd = -1;
    }
    p->used = false;
}

static int connect_target(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void accept_one(int lfd, const char *host, const char *port)
{
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    int sfd = connect_target(host, port);
    pair_t *p = NULL;
    for (int i = 0; i < MAX_PAIRS && !p; i++)
        if (!pairs[i].used)
            p = &pairs[i];
    if (sfd < 0 || !p) {
        /* The target is down (or we are full): the client sees it at once. */
        struct linger l = {1, 0};
        setsockopt(cfd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(cfd);
        if (sfd >= 0)
            close(sfd);
        return;
    }
    memset(p, 0, sizeof *p);
    p->used = true;
    p->s[0].fd = cfd;
    p->s[1].fd = sfd;
    set_nonblock(cfd);
    set_nonblock(sfd);
}

/* Reads control changes: returns the mode word of a new seq, or NULL. */
static const char *read_control(const char *path, long *last_seq)
{
    static char mode[32];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    long seq = 0;
    int n = fscanf(f, "%ld %31s", &seq, mode);
    fclose(f);
    if (n != 2 || seq == *last_seq)
        return NULL;
    *last_seq = seq;
    return mode;
}

static void ack_control(const char *path, long seq)
{
    char ack[600], tmp[620];
    snprintf(ack, sizeof ack, "%s.ack", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", ack);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%ld\n", seq);
    fclose(f);
    rename(tmp, ack);
}

/* Moves bytes between the sides of p; false when the pair is finished. */
static bool pump(pair_t *p, const short revents[2])
{
    for (int i = 0; i < 2; i++) {
        side_t *from = &p->s[i], *to = &p->s[1 - i];
        if ((revents[i] & (POLLIN | POLLHUP | POLLERR)) && !from->eof && from->len < BUF_SIZE) {
            ssize_t n = read(from->fd, from->buf + from->len, BUF_SIZE - from->len);
            if (n > 0)
                from->len += (size_t)n;
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                from->eof = true;
        }
        if (from->len > 0) {
            ssize_t n = write(to->fd, from->buf, from->len);
            if (n > 0) {
                memmove(from->buf, from->buf + n, from->len - (size_t)n);
                from->len -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                return false;
            }
        }
    }
    /* Either side gone and what it sent delivered: end both. */
    return !((p->s[0].eof && p->s[0].len == 0) || (p->s[1].eof && p->s[1].len == 0));
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s LISTEN_PORT TARGET_HOST TARGET_PORT CONTROL_FILE\n", argv[0]);
        return 2;
    }
    const char *host = argv[2], *port = argv[3], *control = argv[4];
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0) {
        perror("proxy: bind/listen");
        return 1;
    }
    say("listening, forwarding to port", argv[3]);
    for (int i = 0; i < MAX_PAIRS; i++)
        pairs[i].s[0].fd = pairs[i].s[1].fd = -1;

    bool stalled = false;
    long seq = 0;
    while (!stop_now) {
        const char *mode = read_control(control, &seq);
        if (mode) {
            say("mode", mode);
            bool drop = strcmp(mode, "drop") == 0, reset = strcmp(mode, "reset") == 0;
            if (drop || reset)
                for (int i = 0; i < MAX_PAIRS; i++)
                    if (pairs[i].used)
                        close_pair(&pairs[i], reset);
            stalled = strcmp(mode, "stall") == 0;
            ack_control(control, seq);
        }
        if (stalled) {
            /* Touch nothing: a peer's close would wake poll() at once. */
            struct timespec nap = {0, 50 * 1000000L};
            nanosleep(&nap, NULL);
            continue;
        }
        struct pollfd fds[1 + 2 * MAX_PAIRS];
        int idx[MAX_PAIRS];
        nfds_t n = 0;
        fds[n++] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < MAX_PAIRS; i++) {
            idx[i] = -1;
            if (!pairs[i].used)
                continue;
            idx[i] = (int)n;
            for (int s = 0; s < 2; s++) {
                short ev = 0;
                if (!pairs[i].s[s].eof && pairs[i].s[s].len < BUF_SIZE)
                    ev |= POLLIN;
                if (pairs[i].s[1 - s].len > 0)
                    ev |= POLLOUT;
                fds[n++] = (struct pollfd){pairs[i].s[s].fd, ev, 0};
            }
        }
        int rc = poll(fds, n, 50);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc <= 0)
            continue;
        if (fds[0].revents & POLLIN)
            accept_one(lfd, host, port);
        for (int i = 0; i < MAX_PAIRS; i++) {
            if (idx[i] < 0 || !pairs[i].used)
                continue;
            short rev[2] = {fds[idx[i]].revents, fds[idx[i] + 1].revents};
            if (!pump(&pairs[i], rev))
                close_pair(&pairs[i], false);
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        if (pairs[i].used)
            close_pair(&pairs[i], false);
    close(lfd);
    return 0;
}
