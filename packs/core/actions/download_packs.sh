#!/bin/sh
# core.download_packs: ask the pack API (POST /api/v1/packs/download) to fetch packs.
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"
. "$attune_lib_dir/attune_api.sh"

packs=''
destination_dir=''
registry_url=''
ref_spec=''
timeout='300'
verify_ssl='true'
attune_param() {
    case $1 in
        packs) packs=$2 ;;
        destination_dir) destination_dir=$2 ;;
        registry_url) registry_url=$2 ;;
        ref_spec) ref_spec=$2 ;;
        timeout) timeout=$2 ;;
        verify_ssl) verify_ssl=$2 ;;
        api_url) api_url=$2 ;;
        api_token) api_token=$2 ;;
    esac
}
api_failure() {
    attune_json_string "$1"
    printf '{"downloaded_packs":[],"failed_packs":[{"source":"%s","error":%s}],"total_count":0,"success_count":0,"failure_count":1}\n' \
        "api" "$_js"
}
attune_read_params

case $packs in '' | '[]') api_failure 'packs parameter is required'; exit 1 ;; esac
[ -n "$destination_dir" ] || { api_failure 'destination_dir parameter is required'; exit 1; }
attune_int_in_range "$timeout" 10 3600 && timeout=$_dec || timeout=300

attune_json_array "$packs"
request="{\"packs\":$_ja"
attune_json_string "$destination_dir"
request="$request,\"destination_dir\":$_js"
if [ -n "$registry_url" ]; then attune_json_string "$registry_url"; request="$request,\"registry_url\":$_js"; fi
if [ -n "$ref_spec" ]; then attune_json_string "$ref_spec"; request="$request,\"ref_spec\":$_js"; fi
[ "$verify_ssl" = false ] || verify_ssl=true
request="$request,\"timeout\":$timeout,\"verify_ssl\":$verify_ssl}"

attune_api_post /api/v1/packs/download $((timeout + 30)) "$request"
