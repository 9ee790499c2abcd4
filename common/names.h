/*
 * names.h - validation of the names of PROTOCOL.md: rooms, nicks, refs.
 */
#ifndef PARLEY_NAMES_H
#define PARLEY_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_ROOM 64
#define NAME_MAX_NICK 32
#define NAME_MAX_REF 64

/* 1 to 64 bytes of A-Z a-z 0-9 . _ - */
bool name_room_valid(const char *s, size_t len);

/* 1 to 32 bytes of valid UTF-8 with no control character (Unicode Cc:
 * U+0000..U+001F, U+007F, U+0080..U+009F). */
bool name_nick_valid(const char *s, size_t len);

/* At most 64 bytes of valid UTF-8 (a client's request reference). */
bool name_ref_valid(const char *s, size_t len);

#endif
