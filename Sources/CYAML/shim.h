#ifndef DORY_CYAML_SHIM_H
#define DORY_CYAML_SHIM_H
#include <yaml.h>
#endif
