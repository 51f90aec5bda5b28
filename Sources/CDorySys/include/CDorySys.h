#ifndef DORY_CDORYSYS_H
#define DORY_CDORYSYS_H
#include <sys/types.h>

/// prctl(PR_SET_CHILD_SUBREAPER, 1): returns 0 or -1 with errno.
int dory_set_child_subreaper(void);

/// The wait-status macros, which Swift cannot import.
int dory_wifexited(int status);
int dory_wexitstatus(int status);
int dory_wifsignaled(int status);
int dory_wtermsig(int status);

/// The current thread's errno (Swift's `errno` is fine too; this avoids TLS import quirks).
int dory_errno(void);

/* ---- Run mode (spec/supervise.md §2.4, §7.2): non-variadic wrappers without logic. ---- */
#include <spawn.h>

/// WCOREDUMP(status).
int dory_wcoredump(int status);

/// posix_spawn_file_actions_addchdir_np: 0 or an errno value; ENOSYS where the C library lacks it.
int dory_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
/// posix_spawn_file_actions_addclosefrom_np(actions, from): 0 or an errno value; ENOSYS where missing.
int dory_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);
/// posix_spawn_file_actions_addtcsetpgrp_np(actions, fd): 0 or an errno value; ENOSYS where missing.
int dory_spawn_addtcsetpgrp(posix_spawn_file_actions_t *actions, int fd);

/// close_range(from, ~0U, CLOSE_RANGE_CLOEXEC): 0 or -1 with errno.
int dory_cloexec_from(unsigned int from);

/// recvmsg of one datagram with SCM_CREDENTIALS: returns the byte count (or -1 with errno); sets *pid/*uid
/// (-1 when no credentials came), *truncated (MSG_TRUNC) and closes every SCM_RIGHTS descriptor at once.
long dory_recv_with_credentials(int fd, void *buffer, unsigned long length, int *pid, int *uid, int *truncated);
#endif
