#!/bin/sh
# core.noop: optionally print `[NOOP] <message>`, then exit with `exit_code` (0-255).
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"

message=''
exit_code='0'
attune_param() {
    case $1 in
        message) message=$2 ;;
        exit_code) exit_code=$2 ;;
    esac
}
attune_read_params

[ -n "$exit_code" ] || exit_code=0
if ! attune_int_in_range "$exit_code" 0 255; then
    printf 'ERROR: exit_code must be an integer between 0 and 255 (got %s)\n' "$exit_code" >&2
    exit 1
fi

if [ -n "$message" ]; then
    printf '[NOOP] %s\n' "$message"
fi
printf 'No operation completed successfully\n'
exit "$_dec"
