/* it_proxy.h -- a loopback TCP proxy in a thread of the test program, for
 * cutting a program off from a server in the ways a network does.
 *
 *   IT_PROXY_PASS       forward every connection to the target; entering
 *                       it closes the connections held unanswered, and
 *                       stalled ones carry on
 *   IT_PROXY_STALL      forward nothing either way but keep every
 *                       connection open (a session frozen mid-statement),
 *                       and hold new connections unanswered
 *   IT_PROXY_BLACKHOLE  close every forwarded connection, keep listening,
 *                       and hold each new connection open without ever
 *                       answering or reaching the target: a server (or a
 *                       middlebox) that accepts TCP and never speaks
 *   IT_PROXY_DOWN       close every connection and the listener: new
 *                       connections are refused, as by a stopped server
 *
 * The proxy owns its sockets and thread; it_proxy_stop releases them. */
#ifndef HMS_IT_PROXY_H
#define HMS_IT_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define IT_PROXY_MAX_PAIRS 16
#define IT_PROXY_MAX_HELD 64

typedef enum { IT_PROXY_PASS, IT_PROXY_STALL, IT_PROXY_BLACKHOLE, IT_PROXY_DOWN } it_proxy_mode_t;

typedef struct {
    int port;            /* where clients connect, on 127.0.0.1 */
    int target_port;     /* the server's, on 127.0.0.1 */
    atomic_int accepted; /* connections accepted so far, in any mode */
    atomic_int held;     /* connections held unanswered so far */
    /* The thread's own: */
    int listen_fd;
    int pairs[IT_PROXY_MAX_PAIRS][2]; /* client, server; -1 when free */
    int holes[IT_PROXY_MAX_HELD];     /* black-holed clients; -1 when free */
    atomic_int want, state;           /* it_proxy_mode_t, or -1 to quit */
    pthread_t thread;
    bool started;
} it_proxy_t;

/* Listens on a free loopback port and forwards to target_port (PASS).
 * Returns 0, or -1 with a line on stderr. */
int it_proxy_start(it_proxy_t *px, int target_port);
/* Switches the mode and waits (at most 5 s) until the thread has applied
 * it; 0 or -1. */
int it_proxy_set(it_proxy_t *px, it_proxy_mode_t mode);
/* Ends the thread and closes everything; safe to call twice, or on a proxy
 * never started (zeroed). */
void it_proxy_stop(it_proxy_t *px);

#endif
