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
#endif
