/*
 * fuzz_ws_handshake.c - libFuzzer target for the opening handshake.
 *
 * The input is parsed as a request head and, when complete, checked as a
 * WebSocket upgrade; the whole input is also fed to ws_parse_extensions
 * directly so the offer grammar gets fuzzed without the HTTP framing.
 * Every borrowed string must point inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_handshake.h"
#include "fuzz.h"

static bool inside(ws_str_t s, const char *buf, size_t len)
{
    return s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

static void check_offers(const ws_handshake_t *hs, const char *buf, size_t len)
{
    CHECK(hs->num_protocols <= WS_MAX_PROTOCOLS);
    CHECK(hs->num_extensions <= WS_MAX_EXTENSIONS);
    for (size_t i = 0; i < hs->num_protocols; i++)
        CHECK(hs->protocols[i].len > 0 && inside(hs->protocols[i], buf, len));
    for (size_t i = 0; i < hs->num_extensions; i++) {
        const ws_ext_offer_t *o = &hs->extensions[i];
        CHECK(o->name.len > 0 && inside(o->name, buf, len));
        CHECK(o->num_params <= WS_MAX_EXT_PARAMS);
        for (size_t j = 0; j < o->num_params; j++) {
            CHECK(inside(o->params[j].name, buf, len));
            CHECK(o->params[j].value.p == NULL ||
                  (o->params[j].value.len > 0 &&
                   inside(o->params[j].value, buf, len)));
        }
    }
}

static void check_handshake(const http_request_t *req, const char *buf,
                            size_t len)
{
    static ws_handshake_t hs;
    ws_is_upgrade(req);
    int rc = ws_handshake_check(req, &hs);
    CHECK(rc == hs.status);
    CHECK(rc == 0 || rc == 400 || rc == 405 || rc == 426 || rc == 505);
    if (rc != 0) {
        CHECK(hs.error != NULL);
        return;
    }
    CHECK(strlen(hs.accept) == WS_ACCEPT_LEN);
    CHECK(hs.origin.p == NULL || inside(hs.origin, buf, len));
    check_offers(&hs, buf, len);
    ws_offers_protocol(&hs, "parley.v1");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static http_request_t req;
    static ws_handshake_t hs;
    const char *buf = (const char *)data;
    const http_limits_t lim = {1024, 8192, 64};
    int rc = http_parse_request(buf, size, 0, &lim, &req);
    if (rc > 0)
        check_handshake(&req, buf, (size_t)rc);
    memset(&hs, 0, sizeof hs);
    if (ws_parse_extensions(buf, size, &hs) == 0) {
        CHECK(hs.num_extensions > 0);
        check_offers(&hs, buf, size);
    }
    return 0;
}
