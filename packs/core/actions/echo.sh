#!/bin/sh
# core.echo: write `message` to stdout without a trailing newline.
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"

message=''
attune_param() {
    case $1 in
        message) message=$2 ;;
    esac
}
attune_read_params

printf '%s' "$message"
exit 0
