#!/bin/sh
# core.sleep: print `message` (if any), sleep `seconds` (0-3600), report the time slept.
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"

seconds='1'
message=''
attune_param() {
    case $1 in
        seconds) seconds=$2 ;;
        message) message=$2 ;;
    esac
}
attune_read_params

[ -n "$seconds" ] || seconds=1
if ! attune_int_in_range "$seconds" 0 3600; then
    printf 'ERROR: seconds must be an integer between 0 and 3600 (got %s)\n' "$seconds" >&2
    exit 1
fi
seconds=$_dec

if [ -n "$message" ]; then
    printf '%s\n' "$message"
fi
sleep "$seconds"
printf 'Slept for %s seconds\n' "$seconds"
exit 0
