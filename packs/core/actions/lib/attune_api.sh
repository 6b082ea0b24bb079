# Thin client of the Attune pack API for the pack-management actions. POSIX sh; sourced after
# attune_params.sh. The caller sets `api_url`/`api_token` (falling back to ATTUNE_API_URL and
# ATTUNE_API_TOKEN) and defines `api_failure MESSAGE`, which prints the action's empty result
# with one failure entry.

api_url=''
api_token=''

# A JSON array for a parameter value into _ja: JSON arrays pass through, a bare string is wrapped.
attune_json_array() {
    case $1 in
        '['*) _ja=$1 ;;
        '') _ja='[]' ;;
        *) attune_json_string "$1"; _ja="[$_js]" ;;
    esac
}

# POST JSON $3 to the API path $1 with a curl timeout of $2 seconds. On 2xx print the response's
# `data` value and exit 0; otherwise call api_failure and exit 1.
attune_api_post() {
    _api_base=${api_url:-${ATTUNE_API_URL:-http://localhost:8080}}
    _api_base=${_api_base%/}
    _api_token=${api_token:-${ATTUNE_API_TOKEN:-}}
    _api_marker='__ATTUNE_HTTP_CODE__'
    set -- "$_api_base$1" -sS -X POST --max-time "$2" --connect-timeout 10 \
        -H 'Content-Type: application/json' -H 'Accept: application/json' \
        -w "\\n$_api_marker%{http_code}" --data-binary "$3"
    [ -z "$_api_token" ] || set -- "$@" -H "Authorization: Bearer $_api_token"
    _api_url=$1
    shift
    _api_out=$(curl "$@" -- "$_api_url")
    _api_rc=$?
    if [ "$_api_rc" -ne 0 ]; then
        api_failure "API call failed (HTTP 0): curl error code $_api_rc calling $_api_url"
        exit 1
    fi
    _api_code=${_api_out##*"$_api_marker"}
    _api_body=${_api_out%"$_api_marker"*}
    _api_body=${_api_body%"$attune_nl"}
    case $_api_code in
        2??) ;;
        *)
            _api_msg=$_api_body
            case $_api_body in
                *'"error":"'*)
                    _api_msg=${_api_body#*\"error\":\"}
                    _api_msg=${_api_msg%%\"*}
                    ;;
            esac
            api_failure "API call failed (HTTP $_api_code): $_api_msg"
            exit 1
            ;;
    esac
    # Unwrap the {"data": ...} envelope.
    _api_data=${_api_body#"${_api_body%%[![:space:]]*}"}
    _api_data=${_api_data%"${_api_data##*[![:space:]]}"}
    case $_api_data in
        '{"data":'*'}')
            _api_data=${_api_data#'{"data":'}
            _api_data=${_api_data%'}'}
            case $_api_data in
                *',"message":"'*'"') _api_data=${_api_data%,\"message\":*} ;;
            esac
            ;;
    esac
    printf '%s\n' "$_api_data"
    exit 0
}
