#!/bin/sh
# Install Chromium for the browser tests (tests/browser) when it is missing and we are able to.
# Never fails the build: where it cannot install, it says why and the browser tests skip with a reason.
set -u

for candidate in "${COURSEKIT_CHROMIUM:-}" chromium chromium-browser google-chrome google-chrome-stable; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
        echo "install_chromium: found $(command -v "$candidate"); nothing to do"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get here; install Chromium yourself (or set COURSEKIT_CHROMIUM to a" \
         "Chrome/Chromium binary) to run the browser tests; they will be skipped"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install_chromium: not root and no password-less sudo; run 'sudo apt-get install chromium'" \
         "to run the browser tests; they will be skipped"
    exit 0
fi

echo "install_chromium: installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get install -y --no-install-recommends chromium \
   || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends chromium; }; then
    if command -v chromium >/dev/null 2>&1; then
        echo "install_chromium: installed $(command -v chromium)"
    else
        echo "install_chromium: apt-get succeeded but no chromium is on PATH; the browser tests will be skipped"
    fi
else
    echo "install_chromium: apt-get could not install chromium (offline? no such package on this" \
         "distribution?); the browser tests will be skipped"
fi
exit 0
