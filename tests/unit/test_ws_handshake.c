/*
 * test_ws_handshake.c - the RFC 6455 opening handshake: the RFC's example,
 * a real browser request, and every malformed variant with its status;
 * subprotocol and extension offer parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ws_handshake.h"

static const http_limits_t limits = {1024, 8192, 64};

/* Request-line and header lines of a minimal valid upgrade. */
#define GET "GET /ws HTTP/1.1\r\n"
#define HOST "Host: server.example.com\r\n"
#define UPGRADE "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define VERSION "Sec-WebSocket-Version: 13\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* The request is parsed into this static, so hs's borrowed strings stay
 * valid after check() returns. */
static http_request_t req;
static char reqbuf[4096];

/* Parses head (which must be a valid head) and runs the check. */
static int check(const char *head, ws_handshake_t *hs)
{
    size_t n = strlen(head);
    assert_true(n < sizeof reqbuf);
    memcpy(reqbuf, head, n);
    assert_int_equal(http_parse_request(reqbuf, n, 0, &limits, &req), (int)n);
    memset(hs, 0xa5, sizeof *hs); /* the check must initialize everything */
    int rc = ws_handshake_check(&req, hs);
    assert_int_equal(rc, hs->status);
    if (rc != 0)
        assert_non_null(hs->error);
    return rc;
}

static int status_of(const char *head)
{
    ws_handshake_t hs;
    return check(head, &hs);
}

static void assert_str(ws_str_t s, const char *want)
{
    assert_non_null(s.p);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, s.len);
}

static void test_rfc_example(void **state)
{
    ws_handshake_t hs;
    assert_int_equal(check(GET HOST UPGRADE CONN VERSION KEY "\r\n", &hs), 0);
    assert_null(hs.error);
    assert_string_equal(hs.accept, RFC_ACCEPT);
    assert_int_equal(hs.num_protocols, 0);
    assert_int_equal(hs.num_extensions, 0);
    assert_null(hs.origin.p);

    char out[WS_ACCEPT_LEN + 1];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    assert_string_equal(out, RFC_ACCEPT);
}

static const char chrome[] =
    "GET /ws HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: parley.v1\r\n"
    "\r\n";

static void test_chrome(void **state)
{
    ws_handshake_t hs;
    assert_int_equal(check(chrome, &hs), 0);
    assert_true(ws_is_upgrade(&req));
    assert_string_equal(hs.accept, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert_str(hs.origin, "http://localhost:8080");
    assert_int_equal(hs.num_protocols, 1);
    assert_true(ws_offers_protocol(&hs, "parley.v1"));
    assert_false(ws_offers_protocol(&hs, "Parley.v1"));
    assert_false(ws_offers_protocol(&hs, "parley"));
    assert_int_equal(hs.num_extensions, 1);
    assert_str(hs.extensions[0].name, "permessage-deflate");
    assert_int_equal(hs.extensions[0].num_params, 1);
    assert_str(hs.extensions[0].params[0].name, "client_max_window_bits");
    assert_null(hs.extensions[0].params[0].value.p);
}

static void test_is_upgrade(void **state)
{
    ws_handshake_t hs;
    check("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &hs);
    assert_false(ws_is_upgrade(&req));
    check("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", &hs);
    assert_false(ws_is_upgrade(&req));
    check("GET / HTTP/1.1\r\nUpgrade: h2c, WebSocket\r\n\r\n", &hs);
    assert_true(ws_is_upgrade(&req));
    check("GET / HTTP/1.1\r\nUpgrade: h2c\r\nupgrade: websocket\r\n\r\n", &hs);
    assert_true(ws_is_upgrade(&req));
}

static void test_method_and_version(void **state)
{
    assert_int_equal(
        status_of("POST /ws HTTP/1.1\r\n" HOST UPGRADE CONN VERSION KEY "\r\n"),
        405);
    assert_int_equal(
        status_of("get /ws HTTP/1.1\r\n" HOST UPGRADE CONN VERSION KEY "\r\n"),
        405);
    assert_int_equal(
        status_of("GET /ws HTTP/1.0\r\n" HOST UPGRADE CONN VERSION KEY "\r\n"),
        505);
    /* The method is checked first. */
    assert_int_equal(status_of("POST /ws HTTP/1.0\r\n\r\n"), 405);
}

static void test_host(void **state)
{
    assert_int_equal(status_of(GET UPGRADE CONN VERSION KEY "\r\n"), 400);
    assert_int_equal(
        status_of(GET HOST "host: other\r\n" UPGRADE CONN VERSION KEY "\r\n"),
        400);
}

static void test_upgrade_and_connection(void **state)
{
    assert_int_equal(status_of(GET HOST CONN VERSION KEY "\r\n"), 400);
    assert_int_equal(
        status_of(GET HOST "Upgrade: h2c\r\n" CONN VERSION KEY "\r\n"), 400);
    assert_int_equal(
        status_of(GET HOST "Upgrade: WebSocket\r\n" CONN VERSION KEY "\r\n"),
        0);
    assert_int_equal(status_of(GET HOST UPGRADE VERSION KEY "\r\n"), 400);
    assert_int_equal(status_of(GET HOST UPGRADE
                               "Connection: keep-alive\r\n" VERSION KEY "\r\n"),
                     400);
    assert_int_equal(status_of(GET HOST UPGRADE
                               "Connection: keep-alive, Upgrade\r\n" VERSION KEY
                               "\r\n"),
                     0);
    assert_int_equal(status_of(GET HOST UPGRADE
                               "Connection: keep-alive\r\n"
                               "Connection: upgrade\r\n" VERSION KEY "\r\n"),
                     0);
}

static void test_version(void **state)
{
    assert_int_equal(status_of(GET HOST UPGRADE CONN KEY "\r\n"), 426);
    assert_int_equal(status_of(GET HOST UPGRADE CONN
                               "Sec-WebSocket-Version: 8\r\n" KEY "\r\n"),
                     426);
    assert_int_equal(status_of(GET HOST UPGRADE CONN
                               "Sec-WebSocket-Version: 13, 8\r\n" KEY "\r\n"),
                     426);
    assert_int_equal(status_of(GET HOST UPGRADE CONN
                               "Sec-WebSocket-Version: 130\r\n" KEY "\r\n"),
                     426);
    assert_int_equal(
        status_of(GET HOST UPGRADE CONN VERSION VERSION KEY "\r\n"), 426);
    /* The version is checked before the key. */
    assert_int_equal(status_of(GET HOST UPGRADE CONN "\r\n"), 426);
}

#define KEY_STATUS(k)                                                          \
    status_of(GET HOST UPGRADE CONN VERSION "Sec-WebSocket-Key: " k "\r\n"     \
                                            "\r\n")

static void test_key(void **state)
{
    assert_int_equal(status_of(GET HOST UPGRADE CONN VERSION "\r\n"), 400);
    assert_int_equal(KEY_STATUS("AAECAwQFBgcICQoLDA0ODw=="), 0);
    assert_int_equal(KEY_STATUS("AAECAwQFBgcICQoLDA0O"), 400);     /* 15 */
    assert_int_equal(KEY_STATUS("AAECAwQFBgcICQoLDA0ODxA="), 400); /* 17 */
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub25jZQ!="), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub2!jZQ=="), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub25jZQ"), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub25jZQ="), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub25jZQ==="), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub25jZR=="), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBs ZSBub25jZQ=="), 400);
    assert_int_equal(KEY_STATUS("dGhlIHNhbXBsZSBub25jZQ-_"), 400);
    assert_int_equal(KEY_STATUS(""), 400);
    assert_int_equal(status_of(GET HOST UPGRADE CONN VERSION KEY KEY "\r\n"),
                     400);
    /* Surrounding whitespace is not part of the value. */
    assert_int_equal(KEY_STATUS("  dGhlIHNhbXBsZSBub25jZQ==\t"), 0);
}

#define BASE GET HOST UPGRADE CONN VERSION KEY

static void test_protocols(void **state)
{
    ws_handshake_t hs;
    assert_int_equal(
        check(BASE "Sec-WebSocket-Protocol: parley.v1, chat\r\n\r\n", &hs), 0);
    assert_int_equal(hs.num_protocols, 2);
    assert_str(hs.protocols[0], "parley.v1");
    assert_str(hs.protocols[1], "chat");
    assert_true(ws_offers_protocol(&hs, "chat"));
    assert_int_equal(check(BASE "Sec-WebSocket-Protocol: a\r\n"
                                "sec-websocket-protocol: b ,\tc\r\n\r\n",
                           &hs),
                     0);
    assert_int_equal(hs.num_protocols, 3);
    assert_str(hs.protocols[2], "c");
    assert_int_equal(status_of(BASE "Sec-WebSocket-Protocol: a,,b\r\n\r\n"),
                     400);
    assert_int_equal(status_of(BASE "Sec-WebSocket-Protocol: a,\r\n\r\n"), 400);
    assert_int_equal(status_of(BASE "Sec-WebSocket-Protocol: ,a\r\n\r\n"), 400);
    assert_int_equal(status_of(BASE "Sec-WebSocket-Protocol:\r\n\r\n"), 400);
    assert_int_equal(status_of(BASE "Sec-WebSocket-Protocol: a b\r\n\r\n"),
                     400);
    assert_int_equal(status_of(BASE "Sec-WebSocket-Protocol: a/b\r\n\r\n"),
                     400);
}

static void test_protocols_limit(void **state)
{
    ws_handshake_t hs;
    char head[2048];
    int n = snprintf(head, sizeof head, "%sSec-WebSocket-Protocol: ", BASE);
    for (int i = 0; i < WS_MAX_PROTOCOLS + 4; i++)
        n += snprintf(head + n, sizeof head - (size_t)n, "%sp%d", i ? ", " : "",
                      i);
    snprintf(head + n, sizeof head - (size_t)n, "\r\n\r\n");
    assert_int_equal(check(head, &hs), 0);
    assert_int_equal(hs.num_protocols, WS_MAX_PROTOCOLS);
    assert_true(ws_offers_protocol(&hs, "p15"));
    assert_false(ws_offers_protocol(&hs, "p16"));
    /* Offers past the limit are still validated. */
    snprintf(head + n, sizeof head - (size_t)n, ",,\r\n\r\n");
    assert_int_equal(status_of(head), 400);
}

static int parse_ext(const char *value, ws_handshake_t *hs)
{
    memset(hs, 0, sizeof *hs);
    return ws_parse_extensions(value, strlen(value), hs);
}

static void test_extensions(void **state)
{
    ws_handshake_t hs;
    assert_int_equal(
        parse_ext("permessage-deflate; client_max_window_bits, "
                  "permessage-deflate; server_no_context_takeover; "
                  "client_max_window_bits=10",
                  &hs),
        0);
    assert_int_equal(hs.num_extensions, 2);
    assert_str(hs.extensions[0].name, "permessage-deflate");
    assert_int_equal(hs.extensions[0].num_params, 1);
    assert_null(hs.extensions[0].params[0].value.p);
    const ws_ext_offer_t *o = &hs.extensions[1];
    assert_int_equal(o->num_params, 2);
    assert_str(o->params[0].name, "server_no_context_takeover");
    assert_null(o->params[0].value.p);
    assert_str(o->params[1].name, "client_max_window_bits");
    assert_str(o->params[1].value, "10");

    assert_int_equal(parse_ext("x; a=\"10\"", &hs), 0);
    assert_str(hs.extensions[0].params[0].value, "10");
    assert_int_equal(parse_ext("x ;a = 10 ;\tb,y", &hs), 0);
    assert_int_equal(hs.num_extensions, 2);
    assert_str(hs.extensions[0].params[0].value, "10");
    assert_str(hs.extensions[0].params[1].name, "b");
    assert_str(hs.extensions[1].name, "y");
}

static void test_extensions_malformed(void **state)
{
    ws_handshake_t hs;
    static const char *const bad[] = {
        "permessage-deflate;;",
        "; a",
        "a=",
        "a=\"unterminated",
        "x; a=\"unterminated",
        "x; a=",
        "x; a=\"\"",
        "x; a=\"1 0\"",
        "x; a=\"1\\0\"",
        "x;",
        "x,",
        ",x",
        "x,,y",
        "",
        " ",
        "x y",
        "x; a b",
        "x; a=1=2",
        "x; a=\"1\"2",
        "x/y",
        "x; a=@",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_ext(bad[i], &hs) != -1)
            fail_msg("accepted malformed extensions \"%s\"", bad[i]);
    }
    assert_int_equal(
        status_of(BASE "Sec-WebSocket-Extensions: permessage-deflate;;\r\n"
                       "\r\n"),
        400);
    assert_int_equal(status_of(BASE "Sec-WebSocket-Extensions: a\r\n"
                                    "Sec-WebSocket-Extensions: b;\r\n\r\n"),
                     400);
}

static void test_extensions_limits(void **state)
{
    ws_handshake_t hs;
    char v[1024];
    int n = 0;
    for (int i = 0; i < WS_MAX_EXTENSIONS + 3; i++)
        n += snprintf(v + n, sizeof v - (size_t)n, "%se%d", i ? ", " : "", i);
    assert_int_equal(parse_ext(v, &hs), 0);
    assert_int_equal(hs.num_extensions, WS_MAX_EXTENSIONS);
    assert_str(hs.extensions[WS_MAX_EXTENSIONS - 1].name, "e7");
    snprintf(v + n, sizeof v - (size_t)n, ", e; a=");
    assert_int_equal(parse_ext(v, &hs), -1);

    n = snprintf(v, sizeof v, "x");
    for (int i = 0; i < WS_MAX_EXT_PARAMS + 3; i++)
        n += snprintf(v + n, sizeof v - (size_t)n, "; p%d=%d", i, i);
    assert_int_equal(parse_ext(v, &hs), 0);
    assert_int_equal(hs.num_extensions, 1);
    assert_int_equal(hs.extensions[0].num_params, WS_MAX_EXT_PARAMS);
    assert_str(hs.extensions[0].params[7].name, "p7");
    snprintf(v + n, sizeof v - (size_t)n, "; =");
    assert_int_equal(parse_ext(v, &hs), -1);

    /* Several headers append to the same list. */
    assert_int_equal(check(BASE "Sec-WebSocket-Extensions: a; x=1\r\n"
                                "Sec-WebSocket-Extensions: b, c\r\n\r\n",
                           &hs),
                     0);
    assert_int_equal(hs.num_extensions, 3);
    assert_str(hs.extensions[2].name, "c");
}

static void test_accept_key(void **state)
{
    char out[WS_ACCEPT_LEN + 1];
    /* Any bytes are hashed as given; the check validates the key. */
    assert_int_equal(ws_accept_key("", 0, out), 0);
    assert_int_equal(strlen(out), WS_ACCEPT_LEN);
    assert_int_equal(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_example),
        cmocka_unit_test(test_chrome),
        cmocka_unit_test(test_is_upgrade),
        cmocka_unit_test(test_method_and_version),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_upgrade_and_connection),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_protocols_limit),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_extensions_malformed),
        cmocka_unit_test(test_extensions_limits),
        cmocka_unit_test(test_accept_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
