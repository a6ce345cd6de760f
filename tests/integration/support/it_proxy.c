/* it_proxy.c -- the switchable loopback TCP proxy of the integration tests. */
#include "it_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it.h"

#define QUIT (-1)

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* A new connection: held unanswered, or paired with one to the target;
 * closed when there is no room left. */
static void on_accept(it_proxy_t *px, int mode)
{
    int c = accept(px->listen_fd, NULL, NULL), s = -1;
    if (c < 0)
        return;
    atomic_fetch_add(&px->accepted, 1);
    if (mode != IT_PROXY_PASS) {
        atomic_fetch_add(&px->held, 1);
        for (int i = 0; i < IT_PROXY_MAX_HELD; i++)
            if (px->holes[i] < 0) {
                px->holes[i] = c;
                return;
            }
    } else if ((s = it_loopback_socket(px->target_port, false)) >= 0) {
        for (int i = 0; i < IT_PROXY_MAX_PAIRS; i++)
            if (px->pairs[i][0] < 0) {
                px->pairs[i][0] = c;
                px->pairs[i][1] = s;
                return;
            }
    }
    close(c);
    if (s >= 0)
        close(s);
}

/* Copies what is readable on from to to; false when either side is done. */
static bool pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0)
        return false;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

/* Brings the sockets to what mode wants (it_proxy.h).  False while the
 * listener cannot be opened again (the port taken meanwhile): retried on
 * the next turn. */
static bool apply(it_proxy_t *px, int mode, int *applied)
{
    if (mode == *applied)
        return true;
    if (mode == IT_PROXY_DOWN || mode == IT_PROXY_BLACKHOLE)
        close_all(&px->pairs[0][0], 2 * IT_PROXY_MAX_PAIRS);
    if (mode == IT_PROXY_DOWN || mode == IT_PROXY_PASS)
        close_all(px->holes, IT_PROXY_MAX_HELD);
    if (mode == IT_PROXY_DOWN && px->listen_fd >= 0) {
        close(px->listen_fd);
        px->listen_fd = -1;
    }
    if (mode != IT_PROXY_DOWN && px->listen_fd < 0)
        px->listen_fd = it_loopback_socket(px->port, true);
    if (mode != IT_PROXY_DOWN && px->listen_fd < 0)
        return false;
    *applied = mode;
    atomic_store(&px->state, mode);
    return true;
}

static void *proxy_main(void *arg)
{
    it_proxy_t *px = arg;
    int applied = IT_PROXY_PASS;
    for (;;) {
        int mode = atomic_load(&px->want);
        if (mode == QUIT)
            break;
        apply(px, mode, &applied);
        struct pollfd fds[1 + 2 * IT_PROXY_MAX_PAIRS];
        int idx[1 + 2 * IT_PROXY_MAX_PAIRS];
        nfds_t n = 0;
        if (px->listen_fd >= 0) {
            fds[n] = (struct pollfd){px->listen_fd, POLLIN, 0};
            idx[n++] = -1;
        }
        for (int i = 0; applied == IT_PROXY_PASS && i < IT_PROXY_MAX_PAIRS; i++)
            for (int side = 0; side < 2 && px->pairs[i][0] >= 0; side++) {
                fds[n] = (struct pollfd){px->pairs[i][side], POLLIN, 0};
                idx[n++] = i * 2 + side;
            }
        if (poll(fds, n, 50) <= 0)
            continue;
        for (nfds_t k = 0; k < n; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (idx[k] < 0) {
                on_accept(px, applied);
                continue;
            }
            int i = idx[k] / 2, side = idx[k] % 2;
            if (px->pairs[i][0] >= 0 && !pump(px->pairs[i][side], px->pairs[i][1 - side]))
                close_all(px->pairs[i], 2);
        }
    }
    if (px->listen_fd >= 0)
        close(px->listen_fd);
    close_all(&px->pairs[0][0], 2 * IT_PROXY_MAX_PAIRS);
    close_all(px->holes, IT_PROXY_MAX_HELD);
    return NULL;
}

int it_proxy_start(it_proxy_t *px, int target_port)
{
    memset(px, 0, sizeof *px);
    px->target_port = target_port;
    for (int i = 0; i < IT_PROXY_MAX_PAIRS; i++)
        px->pairs[i][0] = px->pairs[i][1] = -1;
    for (int i = 0; i < IT_PROXY_MAX_HELD; i++)
        px->holes[i] = -1;
    px->port = it_free_port();
    px->listen_fd = px->port > 0 ? it_loopback_socket(px->port, true) : -1;
    if (px->listen_fd < 0) {
        fprintf(stderr, "it: proxy: cannot listen on 127.0.0.1:%d\n", px->port);
        return -1;
    }
    atomic_store(&px->want, IT_PROXY_PASS);
    atomic_store(&px->state, IT_PROXY_PASS);
    if (pthread_create(&px->thread, NULL, proxy_main, px) != 0) {
        close(px->listen_fd);
        fprintf(stderr, "it: proxy: cannot start its thread\n");
        return -1;
    }
    px->started = true;
    return 0;
}

int it_proxy_set(it_proxy_t *px, it_proxy_mode_t mode)
{
    atomic_store(&px->want, (int)mode);
    double deadline = it_now_ms() + 5000;
    while (atomic_load(&px->state) != (int)mode) {
        if (it_now_ms() > deadline) {
            fprintf(stderr, "it: proxy: mode %d not applied within 5 s\n", (int)mode);
            return -1;
        }
        it_sleep_ms(10);
    }
    return 0;
}

void it_proxy_stop(it_proxy_t *px)
{
    if (!px->started)
        return;
    atomic_store(&px->want, QUIT);
    pthread_join(px->thread, NULL);
    px->started = false;
}
