/*
 * chat_proto.h - parley.v1 request validation (PROTOCOL.md section 3),
 * no I/O: a client's text message becomes a chat_req_t, or an error code
 * and a message for people.  Only what can be decided from the text alone
 * is checked here; the gateway then answers not_joined, unavailable and
 * rate_limited from its state.
 *
 * Checks, in this order (the first failure is the answer):
 *   1. the text is JSON (jansson, any value, NUL allowed in strings):
 *      else bad_json;
 *   2. it is an object: else bad_request;
 *   3. "ref", when present, is a string of at most 64 bytes of UTF-8:
 *      else bad_request WITHOUT a ref (the request has none usable);
 *   4. "type" is a string: else bad_request; "join", "say", "leave" or
 *      "who" (case-sensitive): else unknown_type;
 *   5. per type, field by field: a required field absent or of another
 *      type, or a bad since, is bad_request; "room" not 1..64 bytes of
 *      A-Z a-z 0-9 . _ - is room_invalid; "nick" not 1..32 bytes of UTF-8
 *      without control characters is nick_invalid; an empty "text" is
 *      bad_request, a longer one than max_text is too_large.
 * Every error after step 3 carries the request's ref.  Unknown fields are
 * ignored.
 */
#ifndef PARLEY_CHAT_PROTO_H
#define PARLEY_CHAT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT_PROTO_MAX_EPOCH 32 /* longer epochs match none (see below) */
#define CHAT_PROTO_MSG_MAX 200  /* error message, with its NUL */

struct json_t;

typedef enum {
    CHAT_REQ_INVALID = 0,
    CHAT_REQ_JOIN,
    CHAT_REQ_SAY,
    CHAT_REQ_LEAVE,
    CHAT_REQ_WHO
} chat_req_type_t;

/* A parsed request.  Strings are NOT NUL-terminated for sure (JSON may
 * carry NULs): use the lengths.  They borrow from the parsed document and
 * stay valid until chat_proto_free(). */
typedef struct {
    chat_req_type_t type;
    const char *type_name; /* "join", "say"...; "request" when unknown */
    const char *room;      /* all types */
    size_t room_len;
    const char *nick; /* join */
    size_t nick_len;
    const char *text; /* say: 1..max_text bytes */
    size_t text_len;
    bool has_since; /* join */
    uint64_t since;
    /* join: "" when absent; an epoch longer than CHAT_PROTO_MAX_EPOCH
     * becomes "-", which matches no epoch (docs/protocol-extensions.md) */
    const char *epoch;
    size_t epoch_len;
    bool has_ref;
    const char *ref;
    size_t ref_len;
    /* NULL when the request is valid; else "bad_json", "bad_request",
     * "unknown_type", "room_invalid", "nick_invalid" or "too_large" (a
     * static string) with message, NUL-terminated, for people */
    const char *error;
    char message[CHAT_PROTO_MSG_MAX];
    struct json_t *root; /* owned parsed document; NULL when not JSON */
} chat_req_t;

/*
 * Parses and validates the request text[0..len) into out (entirely
 * overwritten), with max_text the limit of a say's text in bytes.
 * Returns 0 when valid (out->error NULL) or -1 (out->error and
 * out->message set; out->has_ref tells whether out->ref is usable for the
 * answer).  In both cases out holds memory: call chat_proto_free().
 */
int chat_proto_parse(const char *text, size_t len, size_t max_text,
                     chat_req_t *out);

/* Releases what chat_proto_parse() kept in r; safe to call twice. */
void chat_proto_free(chat_req_t *r);

#endif
