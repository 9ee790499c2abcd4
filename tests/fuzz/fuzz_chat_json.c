/*
 * fuzz_chat_json.c - libFuzzer target for parley.v1 request validation
 * (common/chat_proto).  The first input byte picks max_text (1, 16, 4096
 * or 65536 bytes), the rest is the request text.  Whatever the input, the
 * parser must return 0 or -1 consistently with its error code, and what it
 * accepts must honor PROTOCOL.md section 3: a valid room for every type, a
 * valid nick for join, 1..max_text bytes of text for say, a ref of at most
 * 64 bytes of UTF-8, an epoch of at most 32 bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_proto.h"
#include "names.h"
#include "utf8.h"
#include "fuzz.h"

static const size_t max_texts[4] = {1, 16, 4096, 65536};

static const char *const codes[] = {"bad_json",     "bad_request",
                                    "unknown_type", "room_invalid",
                                    "nick_invalid", "too_large"};

static void check_error(const chat_req_t *r)
{
    bool known = false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        known |= strcmp(r->error, codes[i]) == 0;
    CHECK(known);
    CHECK(r->type == CHAT_REQ_INVALID);
    CHECK(memchr(r->message, '\0', sizeof r->message) != NULL);
    CHECK(r->message[0] != '\0');
    CHECK((r->root == NULL) == (strcmp(r->error, "bad_json") == 0));
    if (strcmp(r->error, "bad_json") == 0)
        CHECK(!r->has_ref);
}

static void check_valid(const chat_req_t *r, size_t max_text)
{
    CHECK(r->type >= CHAT_REQ_JOIN && r->type <= CHAT_REQ_WHO);
    CHECK(name_room_valid(r->room, r->room_len));
    if (r->type == CHAT_REQ_JOIN) {
        CHECK(name_nick_valid(r->nick, r->nick_len));
        CHECK(r->epoch_len <= CHAT_PROTO_MAX_EPOCH);
    }
    if (r->type == CHAT_REQ_SAY) {
        CHECK(r->text_len >= 1 && r->text_len <= max_text);
        CHECK(utf8_valid((const uint8_t *)r->text, r->text_len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t max_text = max_texts[data[0] & 3];
    chat_req_t r;
    int rc = chat_proto_parse((const char *)data + 1, size - 1, max_text, &r);
    CHECK(rc == 0 || rc == -1);
    CHECK((rc == 0) == (r.error == NULL));
    if (rc == 0)
        check_valid(&r, max_text);
    else
        check_error(&r);
    if (r.has_ref)
        CHECK(name_ref_valid(r.ref, r.ref_len));
    chat_proto_free(&r);
    return 0;
}
