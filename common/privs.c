/*
 * privs.c - the root policy and the switch to an unprivileged user.
 */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Looks user up; 0 with *pw filled, or -1 with err set. */
static int lookup(const char *user, struct passwd *pw, char *buf, size_t cap,
                  char *err, size_t errlen)
{
    struct passwd *res = NULL;
    int rc = getpwnam_r(user, pw, buf, cap, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "user: cannot find user '%s'%s%s", user,
                 rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
        return -1;
    }
    return 0;
}

int privs_plan(privs_t *p, const char *user, bool allow_root, char *err,
               size_t errlen)
{
    char buf[4096];
    struct passwd pw;
    bool root = geteuid() == 0;
    memset(p, 0, sizeof *p);
    if (user == NULL || user[0] == '\0') {
        if (!root || allow_root)
            return 0;
        snprintf(
            err, errlen,
            "refusing to run as root: set user (e.g. --user nobody) to "
            "switch to an unprivileged user once the sockets are bound, "
            "or allow_root = yes (--allow-root yes) to run as root anyway");
        return -1;
    }
    if (strlen(user) >= sizeof p->name) {
        snprintf(err, errlen, "user: name too long");
        return -1;
    }
    if (lookup(user, &pw, buf, sizeof buf, err, errlen) != 0)
        return -1;
    if (!root) {
        if (pw.pw_uid != geteuid())
            log_warn("user_ignored", "user=%s reason=\"not started as root\"",
                     user);
        return 0;
    }
    if (pw.pw_uid == 0 && !allow_root) {
        snprintf(err, errlen,
                 "user '%s' is root: name an unprivileged user, or set "
                 "allow_root = yes",
                 user);
        return -1;
    }
    p->drop = pw.pw_uid != 0;
    p->uid = pw.pw_uid;
    p->gid = pw.pw_gid;
    snprintf(p->name, sizeof p->name, "%s", user);
    return 0;
}

int privs_drop(const privs_t *p, char *err, size_t errlen)
{
    if (!p->drop)
        return 0;
    if (setgid(p->gid) != 0 || initgroups(p->name, p->gid) != 0 ||
        setuid(p->uid) != 0) {
        snprintf(err, errlen, "cannot switch to user '%s': %s", p->name,
                 strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != p->uid ||
        geteuid() != p->uid || getegid() != p->gid) {
        snprintf(err, errlen, "switching to user '%s' did not drop root",
                 p->name);
        return -1;
    }
    log_info("privileges_dropped", "user=%s uid=%ld gid=%ld", p->name,
             (long)p->uid, (long)p->gid);
    return 0;
}
