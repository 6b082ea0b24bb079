#!/bin/sh
# core.build_pack_envs: ask the pack API (POST /api/v1/packs/build-envs) to build environments.
set -u
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"
. "$attune_lib_dir/attune_api.sh"

pack_paths=''
packs_base_dir='/opt/attune/packs'
python_version='3.11'
nodejs_version='20'
skip_python='false'
skip_nodejs='false'
force_rebuild='false'
timeout='600'
attune_param() {
    case $1 in
        pack_paths) pack_paths=$2 ;;
        packs_base_dir) packs_base_dir=$2 ;;
        python_version) python_version=$2 ;;
        nodejs_version) nodejs_version=$2 ;;
        skip_python) skip_python=$2 ;;
        skip_nodejs) skip_nodejs=$2 ;;
        force_rebuild) force_rebuild=$2 ;;
        timeout) timeout=$2 ;;
        api_url) api_url=$2 ;;
        api_token) api_token=$2 ;;
    esac
}
api_failure() {
    attune_json_string "$1"
    printf '{"built_environments":[],"failed_environments":[{"pack_ref":"","pack_path":"","runtime":"","error":%s}],"summary":{"total_packs":0,"success_count":0,"failure_count":1,"python_envs_built":0,"nodejs_envs_built":0,"total_duration_ms":0}}\n' \
        "$_js"
}
attune_read_params

case $pack_paths in '' | '[]') api_failure 'pack_paths parameter is required'; exit 1 ;; esac
attune_int_in_range "$timeout" 60 3600 && timeout=$_dec || timeout=600
for flag in skip_python skip_nodejs force_rebuild; do
    eval "[ \"\$$flag\" = true ] || $flag=false"
done
attune_json_array "$pack_paths"
request="{\"pack_paths\":$_ja"
attune_json_string "$packs_base_dir"
request="$request,\"packs_base_dir\":$_js"
attune_json_string "$python_version"
request="$request,\"python_version\":$_js"
attune_json_string "$nodejs_version"
request="$request,\"nodejs_version\":$_js"
request="$request,\"skip_python\":$skip_python,\"skip_nodejs\":$skip_nodejs,\"force_rebuild\":$force_rebuild"
request="$request,\"timeout\":$timeout}"
attune_api_post /api/v1/packs/build-envs $((timeout + 30)) "$request"
