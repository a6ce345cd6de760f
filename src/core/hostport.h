/* hostport.h -- network addresses written as HOST:PORT or [IPV6]:PORT, the
 * one parser behind the metrics setting, its listener and status --metrics,
 * so what the config accepts is what the listener binds and the scraper
 * dials.
 *
 * Pure: no I/O and no name resolution; a host name is only checked for its
 * characters, getaddrinfo() decides later whether it exists. */
#ifndef HMS_CORE_HOSTPORT_H
#define HMS_CORE_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

/* A DNS name is at most 253 characters; an IPv6 literal with a zone fits too. */
#define HMS_HOSTPORT_HOST_MAX 256

typedef struct {
    char host[HMS_HOSTPORT_HOST_MAX]; /* without brackets: "::1", "127.0.0.1", "localhost" */
    char service[6];                  /* the port in decimal, for getaddrinfo() */
    int port;                         /* 1..65535 */
    bool bracketed;                   /* written as [IPV6]:PORT */
} hms_hostport_t;

/* Parses s into *out.  HOST is a name or an IPv4 address (letters, digits,
 * '.', '-', '_'), or an IPv6 address in brackets (hex digits, ':' and '.',
 * optionally %ZONE); PORT is 1..65535 in decimal.  On failure returns false
 * and writes a phrase saying what is wrong ("has no port", ...) into why;
 * *out is then unspecified.  s is only read. */
bool hms_hostport_parse(const char *s, hms_hostport_t *out, char *why, size_t whylen);

#endif
