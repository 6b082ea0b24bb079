#!/bin/sh
# core.get_pack_dependencies: ask the pack API (POST /api/v1/packs/dependencies) to analyse packs.
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"
. "$attune_lib_dir/attune_api.sh"

pack_paths=''
skip_validation='false'
attune_param() {
    case $1 in
        pack_paths) pack_paths=$2 ;;
        skip_validation) skip_validation=$2 ;;
        api_url) api_url=$2 ;;
        api_token) api_token=$2 ;;
    esac
}
api_failure() {
    attune_json_string "$1"
    printf '{"dependencies":[],"runtime_requirements":{},"missing_dependencies":[],"analyzed_packs":[],"errors":[{"pack_path":"","error":%s}]}\n' \
        "$_js"
}
attune_read_params

case $pack_paths in '' | '[]') api_failure 'pack_paths parameter is required'; exit 1 ;; esac
attune_json_array "$pack_paths"
[ "$skip_validation" = true ] || skip_validation=false
attune_api_post /api/v1/packs/dependencies 60 "{\"pack_paths\":$_ja,\"skip_validation\":$skip_validation}"
