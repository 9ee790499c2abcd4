/*
 * chat_proto.c - parley.v1 request validation (chat_proto.h).  The checks
 * and messages are those the gateway answered before this module existed;
 * chat.c only adds the answers that depend on its state.
 */
#include "chat_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "names.h"

/* Records error code with a printf-style message; returns -1. */
static int fail(chat_req_t *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(chat_req_t *r, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->error = code;
    r->type = CHAT_REQ_INVALID;
    return -1;
}

/* The string field name: 1 when present and a string, 0 when absent and
 * optional, -1 (bad_request) when absent and required or of another type. */
static int str_field(chat_req_t *r, const char *name, bool required,
                     const char **s, size_t *len)
{
    json_t *v = json_object_get(r->root, name);
    if (v == NULL && !required)
        return 0;
    if (v == NULL || !json_is_string(v))
        return fail(r, "bad_request", "%s: field %s must be a string",
                    r->type_name, name);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

static int room_field(chat_req_t *r)
{
    if (str_field(r, "room", true, &r->room, &r->room_len) < 0)
        return -1;
    if (!name_room_valid(r->room, r->room_len))
        return fail(r, "room_invalid",
                    "room must be 1 to 64 bytes of A-Z a-z 0-9 . _ -");
    return 0;
}

/* The optional ref; a bad one is reported without a ref. */
static int ref_field(chat_req_t *r)
{
    json_t *v = json_object_get(r->root, "ref");
    if (v == NULL)
        return 0;
    if (!json_is_string(v) ||
        !name_ref_valid(json_string_value(v), json_string_length(v)))
        return fail(r, "bad_request",
                    "ref must be a string of at most 64 bytes");
    r->ref = json_string_value(v);
    r->ref_len = json_string_length(v);
    r->has_ref = true;
    return 0;
}

static int since_epoch_fields(chat_req_t *r)
{
    json_t *s = json_object_get(r->root, "since");
    r->has_since = s != NULL;
    if (s != NULL && (!json_is_integer(s) || json_integer_value(s) < 0))
        return fail(r, "bad_request",
                    "join: since must be a non-negative integer");
    r->since = s != NULL ? (uint64_t)json_integer_value(s) : 0;
    r->epoch = "";
    r->epoch_len = 0;
    if (str_field(r, "epoch", false, &r->epoch, &r->epoch_len) < 0)
        return -1;
    if (r->epoch_len > CHAT_PROTO_MAX_EPOCH) {
        r->epoch = "-"; /* matches no epoch: the replay is not recovered */
        r->epoch_len = 1;
    }
    return 0;
}

static int join_fields(chat_req_t *r)
{
    if (room_field(r) < 0 ||
        str_field(r, "nick", true, &r->nick, &r->nick_len) < 0)
        return -1;
    if (!name_nick_valid(r->nick, r->nick_len))
        return fail(r, "nick_invalid",
                    "nick must be 1 to 32 bytes of UTF-8 without control "
                    "characters");
    return since_epoch_fields(r);
}

static int say_fields(chat_req_t *r, size_t max_text)
{
    if (room_field(r) < 0 ||
        str_field(r, "text", true, &r->text, &r->text_len) < 0)
        return -1;
    if (r->text_len == 0)
        return fail(r, "bad_request", "say: text must not be empty");
    if (r->text_len > max_text)
        return fail(r, "too_large", "text longer than %zu bytes", max_text);
    return 0;
}

/* The type and the fields of that type. */
static int typed_fields(chat_req_t *r, size_t max_text)
{
    json_t *t = json_object_get(r->root, "type");
    if (!json_is_string(t))
        return fail(r, "bad_request", "field type must be a string");
    static const char *const names[] = {"join", "say", "leave", "who"};
    static const chat_req_type_t types[] = {CHAT_REQ_JOIN, CHAT_REQ_SAY,
                                            CHAT_REQ_LEAVE, CHAT_REQ_WHO};
    const char *name = json_string_value(t);
    size_t len = json_string_length(t); /* "say\u0000x" is not "say" */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (len == strlen(names[i]) && memcmp(name, names[i], len) == 0) {
            r->type = types[i];
            r->type_name = names[i];
        }
    }
    if (r->type == CHAT_REQ_INVALID)
        return fail(r, "unknown_type", "unknown request type");
    if (r->type == CHAT_REQ_JOIN)
        return join_fields(r);
    if (r->type == CHAT_REQ_SAY)
        return say_fields(r, max_text);
    return room_field(r);
}

int chat_proto_parse(const char *text, size_t len, size_t max_text,
                     chat_req_t *out)
{
    memset(out, 0, sizeof *out);
    out->type_name = "request";
    json_error_t err;
    out->root = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (out->root == NULL)
        return fail(out, "bad_json", "not JSON: %s", err.text);
    if (!json_is_object(out->root))
        return fail(out, "bad_request", "a request is a JSON object");
    if (ref_field(out) < 0)
        return -1;
    return typed_fields(out, max_text);
}

void chat_proto_free(chat_req_t *r)
{
    json_decref(r->root);
    r->root = NULL;
}
