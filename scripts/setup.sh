#!/usr/bin/env bash
# Set up mlflow-explain in a virtual environment: the CPU build of PyTorch first, then the project.
#
#   bash scripts/setup.sh                  # .venv with the project, its dev tools and the spark extra
#   bash scripts/setup.sh --test           # also Chromium and CJK fonts (apt) for the browser tests
#   bash scripts/setup.sh --venv .venv-ci  # another folder (what .ci/run uses)
#
# Running it again reuses the environment and only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
system_packages=0
while [ $# -gt 0 ]; do
    case "$1" in
        --test) system_packages=1 ;;
        --venv) venv="$2"; shift ;;
        *) echo "setup.sh: unknown option $1 (use --test, --venv DIR)" >&2; exit 2 ;;
    esac
    shift
done

# The browser tests drive Debian's Chromium with Playwright (no `playwright install` needed).
if [ "$system_packages" = 1 ] && ! dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-noto-cjk >/dev/null
fi

python=$(command -v python3.11 || command -v python3)
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# On a CPU-only machine the pinned build is the CPU one; a bare `torch` would pull a multi-GB CUDA build.
"$venv/bin/python" -m pip install --quiet torch==2.13.0
"$venv/bin/python" -m pip install --quiet -e ".[dev,spark]"
echo "set up in $venv (activate it with: . $venv/bin/activate)"
