/*
 * test_guard.c - gateway/guard.c: the Origin policy (default same-host and
 * loopback rule, explicit lists, "*", malformed origins, default ports,
 * IPv6 literals), the allowed_origins syntax check, the address keys of
 * IPv4 and IPv6 peers, and the per-address table (limit, release, entry
 * reuse, many addresses, unlimited).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "guard.h"

/* The policy allowed for Origin o (NULL: none) and Host h (NULL: none). */
static bool ok(const char *allowed, const char *o, const char *h)
{
    return guard_origin_allowed(allowed, o, o ? strlen(o) : 0, h,
                                h ? strlen(h) : 0);
}

static void test_origin_default(void **state)
{
    (void)state;
    assert_true(ok("", NULL, "chat.example.com"));
    assert_true(ok("", "https://chat.example.com", "chat.example.com"));
    assert_true(ok("", "http://chat.example.com", "chat.example.com"));
    assert_true(
        ok("", "http://Chat.Example.COM:8080", "chat.example.com:8080"));
    assert_true(ok("", "https://chat.example.com:443", "chat.example.com"));
    assert_true(ok("", "https://chat.example.com", "chat.example.com:443"));
    assert_false(ok("", "https://chat.example.com", "chat.example.com:8443"));
    assert_false(
        ok("", "http://chat.example.com:8081", "chat.example.com:8080"));
    assert_false(ok("", "http://evil.example", "chat.example.com"));
    assert_false(ok("", "http://evil.example", NULL));
    assert_false(
        ok("", "http://chat.example.com.evil.example", "chat.example.com"));
    /* loopback names on any port, whatever the Host */
    assert_true(ok("", "http://localhost:3000", "chat.example.com"));
    assert_true(ok("", "https://127.0.0.1:1", "chat.example.com"));
    assert_true(ok("", "http://[::1]:8080", "chat.example.com"));
    assert_true(ok("", "http://[2001:db8::1]:8080", "[2001:db8::1]:8080"));
    assert_false(ok("", "http://[2001:db8::1]:8080", "[2001:db8::2]:8080"));
    /* malformed origins never match the default policy */
    assert_false(ok("", "null", "chat.example.com"));
    assert_false(ok("", "file://", "chat.example.com"));
    assert_false(ok("", "ftp://chat.example.com", "chat.example.com"));
    assert_false(ok("", "http://chat.example.com/", "chat.example.com"));
    assert_false(ok("", "http://user@chat.example.com", "chat.example.com"));
    assert_false(ok("", "http://chat.example.com:0", "chat.example.com:0"));
    assert_false(ok("", "http://chat.example.com:99999", "chat.example.com"));
    assert_false(ok("", "http://", ""));
    assert_false(ok("", "", "chat.example.com"));
    /* a malformed Host header matches nothing */
    assert_false(ok("", "http://a.example", "a.example:x"));
}

static void test_origin_list(void **state)
{
    const char *list = " https://chat.example.com , http://dev.example:8080";
    (void)state;
    assert_true(ok(list, "https://chat.example.com", "whatever"));
    assert_true(ok(list, "HTTPS://CHAT.EXAMPLE.COM:443", NULL));
    assert_true(ok(list, "http://dev.example:8080", NULL));
    assert_true(ok(list, NULL, NULL));
    assert_false(ok(list, "http://chat.example.com", "chat.example.com"));
    assert_false(ok(list, "http://dev.example", NULL));
    /* an explicit list replaces the default rule, loopback included */
    assert_false(ok(list, "http://localhost:8080", "localhost:8080"));
    assert_false(ok(list, "https://evil.example", NULL));
    assert_true(ok("*", "https://evil.example", NULL));
    assert_true(ok("*", "null", NULL));
    assert_true(ok("https://a.example, *", "http://evil.example", NULL));
    assert_false(ok(",, ,", "http://evil.example", "chat.example.com"));
    assert_true(ok(",, ,", "http://chat.example.com", "chat.example.com"));
}

static void test_origins_check(void **state)
{
    char err[256];
    (void)state;
    assert_int_equal(guard_origins_check("", err, sizeof err), 0);
    assert_int_equal(guard_origins_check(NULL, err, sizeof err), 0);
    assert_int_equal(guard_origins_check("*", err, sizeof err), 0);
    assert_int_equal(guard_origins_check("https://a.example, http://[::1]:80",
                                         err, sizeof err),
                     0);
    assert_int_equal(
        guard_origins_check("https://a.example, a.example", err, sizeof err),
        -1);
    assert_non_null(strstr(err, "'a.example'"));
    assert_int_equal(
        guard_origins_check("https://a.example/chat", err, sizeof err), -1);
}

static void test_ip_key(void **state)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(1)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    struct sockaddr_in6 m6 = {.sin6_family = AF_INET6};
    struct sockaddr un = {.sa_family = AF_UNIX};
    uint8_t k4[GUARD_IP_KEY_LEN], k6[GUARD_IP_KEY_LEN], km[GUARD_IP_KEY_LEN];
    (void)state;
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::7", &a6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &m6.sin6_addr);
    assert_int_equal(guard_ip_key((struct sockaddr *)&a4, k4), 0);
    assert_int_equal(guard_ip_key((struct sockaddr *)&a6, k6), 0);
    assert_int_equal(guard_ip_key((struct sockaddr *)&m6, km), 0);
    assert_memory_equal(k4, km, GUARD_IP_KEY_LEN); /* same client */
    assert_memory_equal(k6, &a6.sin6_addr, GUARD_IP_KEY_LEN);
    assert_int_equal(guard_ip_key(&un, k4), -1);
}

static void key_of(uint32_t n, uint8_t key[GUARD_IP_KEY_LEN])
{
    memset(key, 0, GUARD_IP_KEY_LEN);
    key[0] = 0x20;
    memcpy(key + 12, &n, 4);
}

static void test_iptab_limit(void **state)
{
    uint8_t a[GUARD_IP_KEY_LEN], b[GUARD_IP_KEY_LEN];
    (void)state;
    guard_iptab_t *t = guard_iptab_new(10);
    assert_non_null(t);
    key_of(1, a);
    key_of(2, b);
    for (int i = 0; i < 5; i++)
        assert_int_equal(guard_ip_acquire(t, a, 5), 1);
    assert_int_equal(guard_ip_acquire(t, a, 5), 0);
    assert_int_equal(guard_ip_count(t, a), 5);
    assert_int_equal(guard_ip_acquire(t, b, 5), 1); /* others unaffected */
    guard_ip_release(t, a);
    assert_int_equal(guard_ip_count(t, a), 4);
    assert_int_equal(guard_ip_acquire(t, a, 5), 1);
    assert_int_equal(guard_ip_acquire(t, a, 5), 0);
    for (int i = 0; i < 5; i++)
        guard_ip_release(t, a);
    assert_int_equal(guard_ip_count(t, a), 0);
    assert_int_equal(guard_ip_addresses(t), 1); /* a's entry is gone */
    guard_ip_release(t, a);                     /* unknown: no-op */
    assert_int_equal(guard_ip_count(t, a), 0);
    assert_int_equal(guard_ip_acquire(t, a, 1), 1);
    assert_int_equal(guard_ip_acquire(t, a, 1), 0);
    guard_iptab_free(t);
    guard_iptab_free(NULL);
}

static void test_iptab_many(void **state)
{
    uint8_t k[GUARD_IP_KEY_LEN];
    (void)state;
    guard_iptab_t *t = guard_iptab_new(16); /* long chains on purpose */
    assert_non_null(t);
    for (uint32_t i = 0; i < 5000; i++) {
        key_of(i, k);
        assert_int_equal(guard_ip_acquire(t, k, 2), 1);
        assert_int_equal(guard_ip_acquire(t, k, 0), 1); /* 0: no limit */
        assert_int_equal(guard_ip_acquire(t, k, 2), 0);
    }
    assert_int_equal(guard_ip_addresses(t), 5000);
    for (uint32_t i = 0; i < 5000; i += 2) {
        key_of(i, k);
        guard_ip_release(t, k);
        guard_ip_release(t, k);
    }
    assert_int_equal(guard_ip_addresses(t), 2500);
    for (uint32_t i = 0; i < 5000; i++) {
        key_of(i, k);
        assert_int_equal(guard_ip_count(t, k), i % 2 ? 2 : 0);
    }
    guard_iptab_free(t); /* frees the entries left */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_default),
        cmocka_unit_test(test_origin_list),
        cmocka_unit_test(test_origins_check),
        cmocka_unit_test(test_ip_key),
        cmocka_unit_test(test_iptab_limit),
        cmocka_unit_test(test_iptab_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
