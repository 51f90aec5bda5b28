#define _GNU_SOURCE
#include "CDorySys.h"
#include <errno.h>
#include <sys/prctl.h>
#include <sys/wait.h>

int dory_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
int dory_wifexited(int status) { return WIFEXITED(status); }
int dory_wexitstatus(int status) { return WEXITSTATUS(status); }
int dory_wifsignaled(int status) { return WIFSIGNALED(status); }
int dory_wtermsig(int status) { return WTERMSIG(status); }
int dory_errno(void) { return errno; }

/* ---- Run mode ---- */
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/close_range.h>

int dory_wcoredump(int status) { return WCOREDUMP(status) ? 1 : 0; }

int dory_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    return posix_spawn_file_actions_addchdir_np(actions, path);
#else
    (void)actions; (void)path; return ENOSYS;
#endif
}

int dory_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
#else
    (void)actions; (void)from; return ENOSYS;
#endif
}

int dory_spawn_addtcsetpgrp(posix_spawn_file_actions_t *actions, int fd) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    return posix_spawn_file_actions_addtcsetpgrp_np(actions, fd);
#else
    (void)actions; (void)fd; return ENOSYS;
#endif
}

int dory_cloexec_from(unsigned int from) {
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, from, ~0U, CLOSE_RANGE_CLOEXEC);
#else
    (void)from; errno = ENOSYS; return -1;
#endif
}

long dory_recv_with_credentials(int fd, void *buffer, unsigned long length, int *pid, int *uid, int *truncated) {
    struct iovec iov = { .iov_base = buffer, .iov_len = length };
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 253)]; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    *pid = -1; *uid = -1; *truncated = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) return -1;
    if (msg.msg_flags & MSG_TRUNC) *truncated = 1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            *pid = (int)cred.pid; *uid = (int)cred.uid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < count; i++) { int passed; memcpy(&passed, fds + i, sizeof passed); close(passed); }
        }
    }
    return (long)n;
}
