/*
 * names.c - validation of room names, nicks and request references
 * (PROTOCOL.md, section 3).
 */
#include "names.h"

#include <stdint.h>

#include "utf8.h"

bool name_room_valid(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_ROOM)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/*
 * On text already known to be valid UTF-8, a Cc code point is a byte
 * below 0x20, 0x7F, or C2 followed by 80..9F (U+0080..U+009F): no other
 * sequence can contain those bytes in those positions.
 */
static bool has_control(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return true;
        if (p[i] == 0xc2 && i + 1 < len && p[i + 1] <= 0x9f)
            return true;
    }
    return false;
}

bool name_nick_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    if (len == 0 || len > NAME_MAX_NICK)
        return false;
    return utf8_valid(p, len) && !has_control(p, len);
}

bool name_ref_valid(const char *s, size_t len)
{
    if (len > NAME_MAX_REF)
        return false;
    return len == 0 || utf8_valid((const uint8_t *)s, len);
}
