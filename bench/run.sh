#!/usr/bin/env bash
# One side-by-side bench run: doryd demo vs the reference Python SDK vs nginx (one worker), and the event
# pipeline vs the reference Python processor library (pydoover).
# Prints Markdown tables (paste them into bench/README.md). Loopback only; < 3 minutes.
#
#   bench/run.sh                 # bench what is built (doryd column says "not built" if missing)
#   bench/run.sh --build         # first: swift build -c release --static-swift-stdlib
#   bench/run.sh --json out.json # any other option goes to bench/bench.py (see --help)
#
# Prepares, only when missing: nginx-light and wrk (apt-get, needs root), and a venv in
# bench/.venv with the reference SDK (dory-sdk) and processor library (pydoover), pinned below, from PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

DORY_SDK_VERSION="${DORY_SDK_VERSION:-2.1.9}"
PYDOOVER_VERSION="${PYDOOVER_VERSION:-1.18.3}"

build=0
args=()
for a in "$@"; do
  case "$a" in
    --build) build=1 ;;
    *) args+=("$a") ;;
  esac
done

if [[ -z "$(command -v swift || true)" && -x /opt/swift/usr/bin/swift ]]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

# --- system tools -----------------------------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
{ command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; } || need+=(nginx-light)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench: missing ${need[*]}; install them (apt-get install -y ${need[*]}) or run as root" >&2
    exit 1
  fi
  echo "bench: installing ${need[*]}" >&2
  # Keep the Debian nginx package from starting its default server on port 80.
  policy_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  if ((policy_created)); then rm -f /usr/sbin/policy-rc.d; fi
fi
export PATH="$PATH:/usr/sbin"

# --- reference Python SDK ---------------------------------------------------------------
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import dory" 2>/dev/null; then
  echo "bench: creating $venv with dory-sdk==$DORY_SDK_VERSION" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "dory-sdk==$DORY_SDK_VERSION" >&2
fi
if ! "$venv/bin/python" -c "import pydoover.processor" 2>/dev/null; then
  echo "bench: adding pydoover==$PYDOOVER_VERSION to $venv (the events section's reference)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "pydoover==$PYDOOVER_VERSION" >&2
fi

# --- doryd ------------------------------------------------------------------------------
if ((build)); then
  echo "bench: building doryd (release, static stdlib)" >&2
  swift build -c release --static-swift-stdlib >&2
fi
if [[ ! -x .build/release/doryd ]]; then
  echo "bench: .build/release/doryd not built; its column will say so (use --build)" >&2
fi

exec python3 "$here/bench.py" "${args[@]+"${args[@]}"}"
