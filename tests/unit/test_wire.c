/* Unit tests of common/wire.c: round trips of every type, items, and every
 * rejection of the decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

#define BUF(s) ((wire_buf_t){(const uint8_t *)(s), sizeof(s) - 1})

static int encode(const wire_msg_t *m, uint8_t *hdr, wire_buf_t *frames)
{
    return wire_encode(m, hdr, frames, 8);
}

static void test_msg_round_trip(void **state)
{
    (void)state;
    wire_msg_t m = {.type = WIRE_MSG,
                    .seq = 58,
                    .ts = 1763900000123ull,
                    .gseq = 1ull << 40,
                    .room = BUF("lobby"),
                    .epoch = BUF("9f2c0011aabbccdd"),
                    .nick = BUF("bob"),
                    .text = BUF("hi")};
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t frames[8];
    int n = encode(&m, hdr, frames);
    assert_int_equal(n, 5);
    assert_int_equal(hdr[0], WIRE_VERSION);
    assert_int_equal(hdr[1], WIRE_MSG);
    assert_int_equal(hdr[24], 58); /* little-endian seq */
    wire_msg_t d;
    const char *err = NULL;
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), 0);
    assert_int_equal(d.type, WIRE_MSG);
    assert_int_equal(d.seq, 58);
    assert_int_equal(d.ts, 1763900000123ull);
    assert_int_equal(d.gseq, 1ull << 40);
    assert_int_equal(d.room.len, 5);
    assert_memory_equal(d.room.p, "lobby", 5);
    assert_memory_equal(d.epoch.p, "9f2c0011aabbccdd", 16);
    assert_memory_equal(d.nick.p, "bob", 3);
    assert_memory_equal(d.text.p, "hi", 2);
    assert_int_equal(d.num_items, 0);
}

static void test_header_fields(void **state)
{
    (void)state;
    wire_msg_t m = {.type = WIRE_JOIN,
                    .flags = WIRE_F_HAS_SINCE | WIRE_F_SILENT,
                    .members = 0xdeadbeef,
                    .limit = 50,
                    .conn = UINT64_MAX,
                    .since = 41,
                    .room = BUF("a"),
                    .nick = BUF("alice"),
                    .epoch = BUF("")};
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t frames[8];
    int n = encode(&m, hdr, frames);
    assert_int_equal(n, 4);
    wire_msg_t d;
    const char *err;
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), 0);
    assert_int_equal(d.flags, WIRE_F_HAS_SINCE | WIRE_F_SILENT);
    assert_int_equal(d.members, 0xdeadbeef);
    assert_int_equal(d.limit, 50);
    assert_true(d.conn == UINT64_MAX);
    assert_int_equal(d.since, 41);
    assert_int_equal(d.epoch.len, 0);
}

static void test_every_type_round_trips(void **state)
{
    (void)state;
    static const uint8_t all[] = {
        WIRE_HELLO,  WIRE_PING,     WIRE_JOIN,      WIRE_SAY,     WIRE_LEAVE,
        WIRE_WHO,    WIRE_HIST,     WIRE_BYE,       WIRE_WELCOME, WIRE_PONG,
        WIRE_JOINED, WIRE_ACK,      WIRE_WHO_REPLY, WIRE_HISTORY, WIRE_ERROR,
        WIRE_MSG,    WIRE_PRESENCE, WIRE_HEARTBEAT};
    for (size_t i = 0; i < sizeof all; i++) {
        wire_msg_t m = {.type = all[i],
                        .room = BUF("r"),
                        .nick = BUF("n"),
                        .text = BUF("t"),
                        .ref = BUF("x"),
                        .epoch = BUF("e"),
                        .node = BUF("node"),
                        .boot = BUF("b"),
                        .seq = i};
        uint8_t hdr[WIRE_HDR_LEN];
        wire_buf_t frames[8];
        int n = encode(&m, hdr, frames);
        size_t offs[WIRE_MAX_FIELDS];
        assert_int_equal(n, 1 + wire_fields(all[i], offs));
        wire_msg_t d;
        const char *err;
        assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), 0);
        assert_int_equal(d.type, all[i]);
        assert_int_equal(d.seq, i);
        assert_string_not_equal(wire_type_name(all[i]), "?");
    }
    assert_string_equal(wire_type_name(0), "?");
}

static void test_history_items(void **state)
{
    (void)state;
    wire_msg_t m = {.type = WIRE_HISTORY,
                    .room = BUF("lobby"),
                    .epoch = BUF("e1"),
                    .seq = 7,
                    .flags = WIRE_F_RECOVERED};
    uint8_t hdr[WIRE_HDR_LEN], ih[2][WIRE_ITEM_HDR_LEN];
    wire_buf_t frames[16];
    int n = wire_encode(&m, hdr, frames, 16);
    assert_int_equal(n, 3);
    wire_item_header(6, 1000, ih[0]);
    wire_item_header(7, 2000, ih[1]);
    frames[n++] = (wire_buf_t){ih[0], WIRE_ITEM_HDR_LEN};
    frames[n++] = BUF("ann");
    frames[n++] = BUF("one");
    frames[n++] = (wire_buf_t){ih[1], WIRE_ITEM_HDR_LEN};
    frames[n++] = BUF("bo");
    frames[n++] = BUF("");
    wire_msg_t d;
    const char *err;
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), 0);
    assert_int_equal(d.num_items, 2);
    wire_item_t it;
    wire_item(&d, 0, &it);
    assert_int_equal(it.seq, 6);
    assert_int_equal(it.ts, 1000);
    assert_memory_equal(it.nick.p, "ann", 3);
    assert_memory_equal(it.text.p, "one", 3);
    wire_item(&d, 1, &it);
    assert_int_equal(it.seq, 7);
    assert_int_equal(it.text.len, 0);
    /* a partial item is refused */
    assert_int_equal(wire_decode(frames, (size_t)n - 1, &d, &err), -1);
    /* a short item header is refused */
    frames[3].len = 15;
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), -1);
    assert_string_equal(err, "bad item header");
}

static void test_who_reply_items(void **state)
{
    (void)state;
    wire_msg_t m = {.type = WIRE_WHO_REPLY, .room = BUF("x"), .ref = BUF("")};
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t frames[8];
    int n = wire_encode(&m, hdr, frames, 8);
    frames[n++] = BUF("alice");
    frames[n++] = BUF("bob");
    wire_msg_t d;
    const char *err;
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), 0);
    assert_int_equal(d.num_items, 2);
    assert_memory_equal(d.items[1].p, "bob", 3);
    frames[n - 1] = BUF("a-nick-that-is-longer-than-32-bytes!");
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), -1);
}

static void expect_reject(wire_buf_t *frames, size_t n, const char *why)
{
    wire_msg_t d;
    const char *err = NULL;
    assert_int_equal(wire_decode(frames, n, &d, &err), -1);
    assert_non_null(err);
    assert_string_equal(err, why);
}

static void test_rejects(void **state)
{
    (void)state;
    wire_msg_t m = {.type = WIRE_SAY,
                    .room = BUF("lobby"),
                    .nick = BUF("a"),
                    .text = BUF("t"),
                    .ref = BUF("r")};
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t frames[8];
    int n = encode(&m, hdr, frames);
    assert_int_equal(n, 5);
    expect_reject(frames, 0, "bad header length");
    expect_reject(frames, (size_t)n - 1, "missing frames");
    frames[n] = BUF("extra");
    expect_reject(frames, (size_t)n + 1, "unexpected frames");
    frames[0].len = WIRE_HDR_LEN - 1;
    expect_reject(frames, (size_t)n, "bad header length");
    frames[0].len = WIRE_HDR_LEN;
    hdr[0] = 2;
    expect_reject(frames, (size_t)n, "unsupported wire version");
    hdr[0] = WIRE_VERSION;
    hdr[1] = 99;
    expect_reject(frames, (size_t)n, "unknown message type");
    hdr[1] = WIRE_SAY;
    frames[1] = BUF("");
    expect_reject(frames, (size_t)n, "invalid room");
    frames[1] = BUF("bad room");
    expect_reject(frames, (size_t)n, "invalid room");
    frames[1] = BUF(
        "0123456789012345678901234567890123456789012345678901234567890123x");
    expect_reject(frames, (size_t)n, "invalid room");
    frames[1] = BUF("lobby");
    frames[2] = BUF("012345678901234567890123456789012");
    expect_reject(frames, (size_t)n, "nick too long");
    frames[2] = BUF("a");
    frames[4] = BUF(
        "01234567890123456789012345678901234567890123456789012345678901234");
    expect_reject(frames, (size_t)n, "ref too long");
}

static void test_room_bounds(void **state)
{
    (void)state;
    char room[WIRE_MAX_ROOM];
    memset(room, 'a', sizeof room);
    wire_msg_t m = {.type = WIRE_LEAVE,
                    .room = {(const uint8_t *)room, sizeof room}};
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t frames[8];
    int n = encode(&m, hdr, frames);
    wire_msg_t d;
    const char *err;
    assert_int_equal(wire_decode(frames, (size_t)n, &d, &err), 0);
    assert_int_equal(d.room.len, WIRE_MAX_ROOM);
    assert_int_equal(wire_encode(&m, hdr, frames, 1), -1); /* cap too small */
    m.type = 200;
    assert_int_equal(wire_encode(&m, hdr, frames, 8), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_round_trip),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_every_type_round_trips),
        cmocka_unit_test(test_history_items),
        cmocka_unit_test(test_who_reply_items),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_room_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
