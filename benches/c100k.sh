#!/usr/bin/env bash
# C100k on one machine: benches/c1m.sh at 100,000 connections (the server and load processes the
# descriptor limit needs, every connection counted by the server's /metrics, answering one echo,
# then drained with 1001; see that script for the environment it takes).
#
# Usage: benches/c100k.sh [CONNECTIONS] (default 100000)
exec "$(dirname "$0")/c1m.sh" "${1:-100000}"
