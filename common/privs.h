/*
 * privs.h - running as root, or not: both programs bind their sockets (and
 * the gateway reads its TLS key) with the privileges they were started
 * with, then switch to an unprivileged user before serving anyone.
 *
 * Policy (keys user and allow_root, section [process]):
 *   started as root, user set    switch to user after setup;
 *   started as root, user empty  refuse to start unless allow_root;
 *   not root                     user is ignored (a warning if it names
 *                                another user); nothing to drop.
 */
#ifndef PARLEY_PRIVS_H
#define PARLEY_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    bool drop; /* privs_drop() will switch to uid/gid */
    uid_t uid;
    gid_t gid;
    char name[64]; /* the user's name, for initgroups() and the log */
} privs_t;

/*
 * Decides, before anything is bound, what privs_drop() will do for the
 * configured user (NULL or "" for none) and allow_root.  Fills *p.
 * Returns 0, or -1 with a message a person can act on in err: started as
 * root with no user and allow_root off, an unknown user, or a user that is
 * root itself without allow_root.
 */
int privs_plan(privs_t *p, const char *user, bool allow_root, char *err,
               size_t errlen);

/*
 * Switches the process to p's user when p->drop (setgid, initgroups,
 * setuid), then checks the switch cannot be undone: setuid(0) must fail.
 * A no-op returning 0 when !p->drop.  Returns 0, or -1 with err set (the
 * caller must exit: the process may be half-switched).
 */
int privs_drop(const privs_t *p, char *err, size_t errlen);

#endif
