/*
 * test_chat_proto.c - parley.v1 request validation (PROTOCOL.md section 3):
 * valid requests of every type with their fields, every error code the
 * text alone decides (bad_json, the bad_request variants, unknown_type,
 * room_invalid, nick_invalid, too_large), the order of the checks, and the
 * ref rules (carried by every error after it is read, dropped when bad).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chat_proto.h"

#define MAX_TEXT 16

/* Parses s (a C string) and returns its error code, or "ok". */
static const char *code_of(const char *s, chat_req_t *r)
{
    int rc = chat_proto_parse(s, strlen(s), MAX_TEXT, r);
    assert_true(rc == 0 || rc == -1);
    assert_true((rc == 0) == (r->error == NULL));
    if (rc != 0) {
        assert_true(r->message[0] != '\0');
        assert_int_equal(r->type, CHAT_REQ_INVALID);
    }
    return rc == 0 ? "ok" : r->error;
}

/* s is refused with code; its ref, when want_ref, is "R". */
static void expect(const char *s, const char *code, bool want_ref)
{
    chat_req_t r;
    const char *got = code_of(s, &r);
    if (strcmp(got, code) != 0)
        fail_msg("%s: got %s, want %s", s, got, code);
    assert_int_equal(r.has_ref, want_ref);
    if (want_ref) {
        assert_int_equal(r.ref_len, 1);
        assert_memory_equal(r.ref, "R", 1);
    }
    chat_proto_free(&r);
}

static bool str_is(const char *p, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

static void test_join_valid(void **state)
{
    (void)state;
    chat_req_t r;
    const char *s =
        "{\"type\":\"join\",\"room\":\"lobby\",\"nick\":\"al\\u00e9\","
        "\"since\":41,\"epoch\":\"9f2c\",\"ref\":\"c-1\",\"x\":[]}";
    assert_string_equal(code_of(s, &r), "ok");
    assert_int_equal(r.type, CHAT_REQ_JOIN);
    assert_string_equal(r.type_name, "join");
    assert_true(str_is(r.room, r.room_len, "lobby"));
    assert_true(str_is(r.nick, r.nick_len, "al\xc3\xa9"));
    assert_true(r.has_since);
    assert_int_equal(r.since, 41);
    assert_true(str_is(r.epoch, r.epoch_len, "9f2c"));
    assert_true(r.has_ref);
    assert_true(str_is(r.ref, r.ref_len, "c-1"));
    chat_proto_free(&r);
    chat_proto_free(&r); /* twice is harmless */
    /* no since, no epoch, no ref */
    s = "{\"type\":\"join\",\"room\":\"a\",\"nick\":\"b\"}";
    assert_string_equal(code_of(s, &r), "ok");
    assert_false(r.has_since);
    assert_int_equal(r.epoch_len, 0);
    assert_false(r.has_ref);
    chat_proto_free(&r);
}

static void test_join_long_epoch(void **state)
{
    (void)state;
    chat_req_t r;
    const char *s =
        "{\"type\":\"join\",\"room\":\"a\",\"nick\":\"b\",\"epoch\":"
        "\"0123456789abcdef0123456789abcdefX\"}";
    assert_string_equal(code_of(s, &r), "ok");
    assert_true(str_is(r.epoch, r.epoch_len, "-")); /* matches none */
    chat_proto_free(&r);
    s = "{\"type\":\"join\",\"room\":\"a\",\"nick\":\"b\",\"epoch\":"
        "\"0123456789abcdef0123456789abcdef\"}";
    assert_string_equal(code_of(s, &r), "ok");
    assert_int_equal(r.epoch_len, CHAT_PROTO_MAX_EPOCH);
    chat_proto_free(&r);
}

static void test_say_leave_who_valid(void **state)
{
    (void)state;
    chat_req_t r;
    assert_string_equal(
        code_of("{\"type\":\"say\",\"room\":\"r.1_-\",\"text\":\"a\\u0000b\"}",
                &r),
        "ok");
    assert_int_equal(r.type, CHAT_REQ_SAY);
    assert_int_equal(r.text_len, 3); /* NUL kept: lengths, not strlen */
    assert_memory_equal(r.text, "a\0b", 3);
    chat_proto_free(&r);
    /* exactly max_text bytes: two-byte characters count as two */
    assert_string_equal(code_of("{\"type\":\"say\",\"room\":\"r\",\"text\":"
                                "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                                "\\u00e9\\u00e9\"}",
                                &r),
                        "ok");
    assert_int_equal(r.text_len, MAX_TEXT);
    chat_proto_free(&r);
    assert_string_equal(code_of("{\"type\":\"leave\",\"room\":\"x\"}", &r),
                        "ok");
    assert_int_equal(r.type, CHAT_REQ_LEAVE);
    chat_proto_free(&r);
    assert_string_equal(
        code_of("{\"room\":\"x\",\"ref\":\"\",\"type\":\"who\"}", &r), "ok");
    assert_int_equal(r.type, CHAT_REQ_WHO);
    assert_true(r.has_ref); /* an empty ref is a ref */
    assert_int_equal(r.ref_len, 0);
    chat_proto_free(&r);
}

static void test_bad_json(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "{not json",
        "{\"type\":\"who\"",
        "nul",
        "\"unterminated",
        "{\"type\":\"who\",\"ref\":\"R\"} trailing",
        "{\"a\":1,}",
        "{\"since\":99999999999999999999999}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(cases[i], "bad_json", false);
    chat_req_t r;
    code_of("{bad", &r);
    assert_non_null(strstr(r.message, "not JSON"));
    assert_null(r.root);
    chat_proto_free(&r);
    /* invalid UTF-8 inside a string is not JSON either */
    assert_int_equal(chat_proto_parse("\"\xff\"", 3, MAX_TEXT, &r), -1);
    assert_string_equal(r.error, "bad_json");
    chat_proto_free(&r);
}

static void test_bad_request_not_object(void **state)
{
    (void)state;
    static const char *const cases[] = {"[1,2]", "42",   "\"str\"",
                                        "null",  "true", "[{\"ref\":\"R\"}]"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(cases[i], "bad_request", false);
}

static void test_bad_request_type(void **state)
{
    (void)state;
    expect("{\"room\":\"x\",\"ref\":\"R\"}", "bad_request", true);
    expect("{\"type\":5,\"ref\":\"R\"}", "bad_request", true);
    expect("{\"type\":null,\"ref\":\"R\"}", "bad_request", true);
    expect("{\"type\":[\"say\"],\"ref\":\"R\"}", "bad_request", true);
}

static void test_bad_request_fields(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"type\":\"say\",\"room\":\"x\",\"text\":5,\"ref\":\"R\"}",
        "{\"type\":\"say\",\"room\":\"x\",\"ref\":\"R\"}",
        "{\"type\":\"say\",\"room\":\"x\",\"text\":\"\",\"ref\":\"R\"}",
        "{\"type\":\"say\",\"text\":\"no room\",\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":\"x\",\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":5,\"nick\":\"n\",\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":\"x\",\"nick\":1,\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":\"x\",\"nick\":\"n\",\"since\":\"1\","
        "\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":\"x\",\"nick\":\"n\",\"since\":1.5,"
        "\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":\"x\",\"nick\":\"n\",\"since\":-1,"
        "\"ref\":\"R\"}",
        "{\"type\":\"join\",\"room\":\"x\",\"nick\":\"n\",\"epoch\":7,"
        "\"ref\":\"R\"}",
        "{\"type\":\"who\",\"ref\":\"R\"}",
        "{\"type\":\"leave\",\"room\":[\"x\"],\"ref\":\"R\"}",
        "{\"type\":\"leave\",\"room\":null,\"ref\":\"R\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(cases[i], "bad_request", true);
    chat_req_t r;
    code_of("{\"type\":\"say\",\"room\":\"x\",\"text\":5}", &r);
    assert_non_null(strstr(r.message, "say: field text"));
    chat_proto_free(&r);
}

static void test_unknown_type(void **state)
{
    (void)state;
    expect("{\"type\":\"dance\",\"ref\":\"R\"}", "unknown_type", true);
    expect("{\"type\":\"JOIN\",\"room\":\"x\",\"nick\":\"y\",\"ref\":\"R\"}",
           "unknown_type", true);
    expect("{\"type\":\"\"}", "unknown_type", false);
    expect("{\"type\":\"say\\u0000\",\"room\":\"x\",\"text\":\"t\"}",
           "unknown_type", false);
}

static void test_room_invalid(void **state)
{
    (void)state;
    static const char *const rooms[] = {
        "bad!room",
        "sp ace",
        "caf\\u00e9",
        "a/b",
        "",
        "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
        "a\\u0000"};
    static const char *const types[] = {"join", "say", "leave", "who"};
    char buf[256];
    for (size_t t = 0; t < 4; t++) {
        for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++) {
            snprintf(buf, sizeof buf,
                     "{\"type\":\"%s\",\"room\":\"%s\",\"nick\":\"n\","
                     "\"text\":\"t\",\"ref\":\"R\"}",
                     types[t], rooms[i]);
            expect(buf, "room_invalid", true);
        }
    }
    /* 64 bytes is the longest valid room */
    chat_req_t r;
    assert_string_equal(
        code_of(
            "{\"type\":\"who\",\"room\":\"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
            "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\"}",
            &r),
        "ok");
    assert_int_equal(r.room_len, 64);
    chat_proto_free(&r);
}

static void test_nick_invalid(void **state)
{
    (void)state;
    static const char *const nicks[] = {
        "a\\u0001b",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "tab\\there",
        "\\u007f",
        "c1\\u0085",
        "",
        "n\\u0000",
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"};
    char buf[256];
    for (size_t i = 0; i < sizeof nicks / sizeof nicks[0]; i++) {
        snprintf(buf, sizeof buf,
                 "{\"type\":\"join\",\"room\":\"r\",\"nick\":\"%s\","
                 "\"ref\":\"R\"}",
                 nicks[i]);
        expect(buf, "nick_invalid", true);
    }
    chat_req_t r;
    assert_string_equal(code_of("{\"type\":\"join\",\"room\":\"r\",\"nick\":"
                                "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                                &r),
                        "ok");
    assert_int_equal(r.nick_len, 32);
    chat_proto_free(&r);
}

static void test_too_large(void **state)
{
    (void)state;
    expect("{\"type\":\"say\",\"room\":\"r\",\"text\":\"01234567890123456\","
           "\"ref\":\"R\"}",
           "too_large", true);
    /* nine two-byte characters: 18 bytes */
    expect("{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\u00e9\\u00e9\\u00e9"
           "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\",\"ref\":\"R\"}",
           "too_large", true);
    chat_req_t r;
    code_of("{\"type\":\"say\",\"room\":\"r\",\"text\":\"01234567890123456\"}",
            &r);
    assert_non_null(strstr(r.message, "16 bytes"));
    chat_proto_free(&r);
}

static void test_ref_rules(void **state)
{
    (void)state;
    /* a bad ref is bad_request without a ref, before anything else */
    expect("{\"type\":\"dance\",\"ref\":5}", "bad_request", false);
    expect("{\"type\":\"who\",\"room\":\"x\",\"ref\":null}", "bad_request",
           false);
    expect("{\"type\":\"who\",\"room\":\"x\",\"ref\":"
           "\"qqqqqqqqqqqqqqqqqqqqqqqqqqqq"
           "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"}",
           "bad_request", false);
    expect("{\"ref\":[\"R\"]}", "bad_request", false);
    /* 64 bytes is fine, and comes back on later errors */
    chat_req_t r;
    const char *s =
        "{\"type\":\"dance\",\"ref\":\"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
        "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"}";
    assert_string_equal(code_of(s, &r), "unknown_type");
    assert_true(r.has_ref);
    assert_int_equal(r.ref_len, 64);
    chat_proto_free(&r);
    /* checks run in order: room before nick before since */
    expect("{\"type\":\"join\",\"room\":\"!\",\"nick\":\"\",\"since\":-1,"
           "\"ref\":\"R\"}",
           "room_invalid", true);
    expect("{\"type\":\"join\",\"room\":\"a\",\"nick\":\"\",\"since\":-1,"
           "\"ref\":\"R\"}",
           "nick_invalid", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_valid),
        cmocka_unit_test(test_join_long_epoch),
        cmocka_unit_test(test_say_leave_who_valid),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_request_not_object),
        cmocka_unit_test(test_bad_request_type),
        cmocka_unit_test(test_bad_request_fields),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_room_invalid),
        cmocka_unit_test(test_nick_invalid),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_ref_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
