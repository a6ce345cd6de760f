/* test_hostport.c -- HOST:PORT and [IPV6]:PORT: the forms accepted, and
 * each refusal with the phrase that says why. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "core/hostport.h"
#include "hms_check.h"

static hms_hostport_t hp;
static char why[128];

static void accepts(const char *s, const char *host, int port, bool bracketed)
{
    why[0] = '\0';
    ck_assert_msg(hms_hostport_parse(s, &hp, why, sizeof(why)), "%s refused: %s", s, why);
    ck_assert_str_eq(hp.host, host);
    ck_assert_int_eq(hp.port, port);
    ck_assert(hp.bracketed == bracketed);
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    ck_assert_str_eq(hp.service, service);
}

static void refuses(const char *s, const char *reason)
{
    why[0] = '\0';
    ck_assert_msg(!hms_hostport_parse(s, &hp, why, sizeof(why)), "%s accepted", s);
    ck_assert_str_eq(why, reason);
}

START_TEST(forms)
{
    accepts("127.0.0.1:9187", "127.0.0.1", 9187, false);
    accepts("localhost:1", "localhost", 1, false);
    accepts("metrics-host.example.org:65535", "metrics-host.example.org", 65535, false);
    accepts("hms_sync:80", "hms_sync", 80, false);
    accepts("[::1]:9187", "::1", 9187, true);
    accepts("[::]:9187", "::", 9187, true);
    accepts("[2001:db8::1]:443", "2001:db8::1", 443, true);
    accepts("[::ffff:127.0.0.1]:8080", "::ffff:127.0.0.1", 8080, true);
    accepts("[fe80::1%eth0]:9187", "fe80::1%eth0", 9187, true);
    accepts("h:00080", "h", 80, false);
}
END_TEST

START_TEST(missing_parts)
{
    refuses("localhost", "no port");
    refuses("localhost:", "no port");
    refuses("[::1]", "no port");
    refuses("[::1]:", "no port");
    refuses(":9187", "the host is empty");
    refuses("[]:9187", "the host is empty");
    refuses("", "no port");
}
END_TEST

START_TEST(ports)
{
    refuses("h:0", "the port is not a number 1..65535");
    refuses("h:65536", "the port is not a number 1..65535");
    refuses("h:99999999999", "the port is not a number 1..65535");
    refuses("h:-1", "the port is not a number 1..65535");
    refuses("h:+80", "the port is not a number 1..65535");
    refuses("h:80x", "the port is not a number 1..65535");
    refuses("h: 80", "the port is not a number 1..65535");
    refuses("[::1]:0", "the port is not a number 1..65535");
    refuses("[::1]:65536", "the port is not a number 1..65535");
}
END_TEST

START_TEST(hosts)
{
    refuses("::1:9187", "an IPv6 address needs brackets, as in [::1]:9187");
    refuses("[::1:9187", "no ] closes the IPv6 address");
    refuses("[::1]9187", "text after ] that is not :PORT");
    refuses("[127.0.0.1]:80", "the host in brackets is not an IPv6 address");
    refuses("[localhost]:80", "the host in brackets is not an IPv6 address");
    refuses("[fe80::1%]:80", "the host in brackets is not an IPv6 address");
    refuses("a b:80", "the host has a character other than letters, digits, '.', '-', '_'");
    refuses("a/b:80", "the host has a character other than letters, digits, '.', '-', '_'");
    char name[300], addr[310];
    memset(name, 'a', 255);
    name[255] = '\0';
    snprintf(addr, sizeof(addr), "%s:80", name);
    accepts(addr, name, 80, false); /* 255 characters fit */
    snprintf(addr, sizeof(addr), "a%s:80", name);
    refuses(addr, "the host is longer than 255 characters");
}
END_TEST

static Suite *hostport_suite(void)
{
    Suite *s = suite_create("hostport");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, forms);
    tcase_add_test(tc, missing_parts);
    tcase_add_test(tc, ports);
    tcase_add_test(tc, hosts);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(hostport_suite)
