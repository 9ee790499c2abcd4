/*
 * test_names.c - room names, nicks and refs as PROTOCOL.md defines them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

#define ROOM(lit) name_room_valid(lit, sizeof(lit) - 1)
#define NICK(lit) name_nick_valid(lit, sizeof(lit) - 1)
#define REF(lit) name_ref_valid(lit, sizeof(lit) - 1)

static void test_room(void **state)
{
    char buf[NAME_MAX_ROOM + 1];
    assert_true(ROOM("lobby"));
    assert_true(ROOM("A-Z.a_z-09"));
    assert_true(ROOM("."));
    assert_false(ROOM(""));
    assert_false(ROOM("a b"));
    assert_false(ROOM("a/b"));
    assert_false(ROOM("caf\xc3\xa9"));
    assert_false(ROOM("a\0b"));
    assert_false(ROOM("a+b"));
    assert_false(ROOM("a~b"));
    memset(buf, 'r', sizeof buf);
    assert_true(name_room_valid(buf, NAME_MAX_ROOM));
    assert_false(name_room_valid(buf, NAME_MAX_ROOM + 1));
}

static void test_nick(void **state)
{
    char buf[NAME_MAX_NICK + 1];
    assert_true(NICK("alice"));
    assert_true(NICK("Zo\xc3\xab \xe2\x98\x83 \xf0\x9f\x98\x80"));
    assert_true(NICK("\xc2\xa0nbsp")); /* U+00A0: not Cc */
    assert_true(NICK("\xc2\xa0"));
    assert_false(NICK(""));
    assert_false(NICK("a\tb")); /* U+0009 */
    assert_false(NICK("a\nb"));
    assert_false(NICK("a\0b"));      /* U+0000 */
    assert_false(NICK("a\x1f"));     /* U+001F */
    assert_false(NICK("a\x7f"));     /* DEL */
    assert_false(NICK("a\xc2\x80")); /* U+0080 */
    assert_false(NICK("\xc2\x9f"
                      "b"));            /* U+009F */
    assert_false(NICK("\xc3\x28"));     /* invalid UTF-8 */
    assert_false(NICK("\xc0\xaf"));     /* overlong */
    assert_false(NICK("\xed\xa0\x80")); /* surrogate */
    assert_false(NICK("\xe2\x98"));     /* truncated */
    memset(buf, 'n', sizeof buf);
    assert_true(name_nick_valid(buf, NAME_MAX_NICK));
    assert_false(name_nick_valid(buf, NAME_MAX_NICK + 1));
    /* The limit is in bytes: 16 two-byte characters fit, 17 do not. */
    char wide[34];
    for (size_t i = 0; i < sizeof wide; i += 2)
        memcpy(wide + i, "\xc3\xa9", 2);
    assert_true(name_nick_valid(wide, 32));
    assert_false(name_nick_valid(wide, 34));
}

static void test_ref(void **state)
{
    char buf[NAME_MAX_REF + 1];
    assert_true(REF(""));
    assert_true(name_ref_valid(NULL, 0));
    assert_true(REF("c-17"));
    assert_true(REF("\xe2\x82\xac any text, even spaces"));
    assert_true(REF("tab\there"));
    assert_false(REF("\xff"));
    assert_false(REF("\xe2\x82"));
    memset(buf, 'x', sizeof buf);
    assert_true(name_ref_valid(buf, NAME_MAX_REF));
    assert_false(name_ref_valid(buf, NAME_MAX_REF + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room),
        cmocka_unit_test(test_nick),
        cmocka_unit_test(test_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
