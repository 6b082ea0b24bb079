#!/bin/sh
# core.register_packs: ask the pack API (POST /api/v1/packs/register-batch) to register packs.
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"
. "$attune_lib_dir/attune_api.sh"

pack_paths=''
packs_base_dir='/opt/attune/packs'
skip_validation='false'
skip_tests='false'
force='false'
attune_param() {
    case $1 in
        pack_paths) pack_paths=$2 ;;
        packs_base_dir) packs_base_dir=$2 ;;
        skip_validation) skip_validation=$2 ;;
        skip_tests) skip_tests=$2 ;;
        force) force=$2 ;;
        api_url) api_url=$2 ;;
        api_token) api_token=$2 ;;
    esac
}
error_stage='api_call'
api_failure() {
    attune_json_string "$1"
    printf '{"registered_packs":[],"failed_packs":[{"pack_ref":"","pack_path":"","error":%s,"error_stage":"%s"}],"summary":{"total_packs":0,"success_count":0,"failure_count":1,"total_components":0,"duration_ms":0}}\n' \
        "$_js" "$error_stage"
}
attune_read_params

case $pack_paths in
    '' | '[]') error_stage='validation'; api_failure 'pack_paths parameter is required'; exit 1 ;;
esac
for flag in skip_validation skip_tests force; do
    eval "[ \"\$$flag\" = true ] || $flag=false"
done
attune_json_array "$pack_paths"
request="{\"pack_paths\":$_ja"
attune_json_string "$packs_base_dir"
request="$request,\"packs_base_dir\":$_js"
request="$request,\"skip_validation\":$skip_validation,\"skip_tests\":$skip_tests,\"force\":$force}"
attune_api_post /api/v1/packs/register-batch 300 "$request"
