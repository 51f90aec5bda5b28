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
