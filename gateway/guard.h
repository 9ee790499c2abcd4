/*
 * guard.h - admission checks of the gateway, with no I/O: the Origin
 * policy of WebSocket upgrades, and a table counting the open connections
 * of each client address (one table per worker).
 */
#ifndef PARLEY_GUARD_H
#define PARLEY_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define GUARD_IP_KEY_LEN 16

/*
 * Whether a WebSocket upgrade may proceed under the allowed_origins
 * setting allowed (NUL-terminated):
 *   origin NULL (no Origin header: not a browser)    allowed;
 *   allowed "*"                                      any origin;
 *   allowed a comma-separated list of origins        scheme, host and port
 *       equal to one of them (case-insensitive host and scheme, default
 *       ports 80/443 made explicit);
 *   allowed ""        http or https with the host and port of the
 *       request's Host header host[0..hlen) (host NULL: none), or
 *       localhost, 127.0.0.1 or [::1] on any port.
 * A malformed Origin ("null", a path, another scheme) only matches "*".
 * Pure; the strings are borrowed for the call.
 */
bool guard_origin_allowed(const char *allowed, const char *origin, size_t olen,
                          const char *host, size_t hlen);

/* Checks the syntax of an allowed_origins value (for startup); 0, or -1
 * with the offending item in err. */
int guard_origins_check(const char *allowed, char *err, size_t errlen);

/* The table key of a peer address: the IPv6 address, or the IPv4 one
 * mapped into ::ffff:0:0/96.  Returns 0, or -1 for another family. */
int guard_ip_key(const struct sockaddr *sa, uint8_t key[GUARD_IP_KEY_LEN]);

typedef struct guard_iptab guard_iptab_t;

/* A table sized for about expected addresses (it works with more, with
 * longer chains).  The hash is keyed with a random seed so clients cannot
 * choose colliding addresses.  NULL when out of memory. */
guard_iptab_t *guard_iptab_new(size_t expected);

/* Frees t and every entry; NULL is a no-op. */
void guard_iptab_free(guard_iptab_t *t);

/*
 * Counts one more connection of key if fewer than limit are counted
 * (limit 0: no limit).  Returns 1 when counted (release it later), 0 when
 * over the limit (nothing counted), -1 when out of memory (nothing
 * counted).
 */
int guard_ip_acquire(guard_iptab_t *t, const uint8_t key[GUARD_IP_KEY_LEN],
                     uint32_t limit);

/* Uncounts one connection of key, counted by guard_ip_acquire(). */
void guard_ip_release(guard_iptab_t *t, const uint8_t key[GUARD_IP_KEY_LEN]);

/* Connections counted for key; the number of addresses in the table. */
uint32_t guard_ip_count(const guard_iptab_t *t,
                        const uint8_t key[GUARD_IP_KEY_LEN]);
size_t guard_ip_addresses(const guard_iptab_t *t);

#endif
