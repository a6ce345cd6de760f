/* hostport.c -- parsing HOST:PORT and [IPV6]:PORT. */
#include "core/hostport.h"

#include <stdio.h>
#include <string.h>

static bool refuse(char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "%s", what);
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A host name or a dotted IPv4 address; '_' because container runtimes
 * name hosts after services that often have one. */
static bool is_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

/* What may stand between the brackets: an IPv6 address (with an embedded
 * IPv4 tail, perhaps) and an optional %ZONE, as in [fe80::1%eth0].  Whether
 * the groups add up is left to getaddrinfo(). */
static bool is_ipv6(const char *s, size_t n)
{
    size_t zone = 0, colons = 0;
    while (zone < n && s[zone] != '%')
        zone++;
    for (size_t i = 0; i < zone; i++) {
        char c = s[i];
        colons += c == ':';
        if (!is_digit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') && c != ':' &&
            c != '.')
            return false;
    }
    if (colons < 2 || zone + 1 == n)
        return false;
    return zone == n || is_name(s + zone + 1, n - zone - 1);
}

/* The decimal port after the colon: 1..65535, digits only. */
static bool parse_port(const char *p, int *port)
{
    long v = 0;
    size_t n = 0;
    for (; is_digit(p[n]) && n < 6; n++)
        v = v * 10 + (p[n] - '0');
    if (n == 0 || p[n] != '\0' || v < 1 || v > 65535)
        return false;
    *port = (int)v;
    return true;
}

bool hms_hostport_parse(const char *s, hms_hostport_t *out, char *why, size_t whylen)
{
    const char *host = s, *hend, *colon;
    out->bracketed = s[0] == '[';
    if (out->bracketed) {
        host = s + 1;
        hend = strchr(host, ']');
        if (hend == NULL)
            return refuse(why, whylen, "no ] closes the IPv6 address");
        colon = hend + 1;
        if (*colon == '\0')
            return refuse(why, whylen, "no port");
        if (*colon != ':')
            return refuse(why, whylen, "text after ] that is not :PORT");
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return refuse(why, whylen, "no port");
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return refuse(why, whylen, "an IPv6 address needs brackets, as in [::1]:9187");
        hend = colon;
    }
    size_t n = (size_t)(hend - host);
    if (n == 0)
        return refuse(why, whylen, "the host is empty");
    if (n >= sizeof(out->host))
        return refuse(why, whylen, "the host is longer than 255 characters");
    if (out->bracketed && !is_ipv6(host, n))
        return refuse(why, whylen, "the host in brackets is not an IPv6 address");
    if (!out->bracketed && !is_name(host, n))
        return refuse(why, whylen,
                      "the host has a character other than letters, digits, '.', '-', '_'");
    if (colon[1] == '\0')
        return refuse(why, whylen, "no port");
    if (!parse_port(colon + 1, &out->port))
        return refuse(why, whylen, "the port is not a number 1..65535");
    memcpy(out->host, host, n);
    out->host[n] = '\0';
    snprintf(out->service, sizeof(out->service), "%d", out->port);
    return true;
}
