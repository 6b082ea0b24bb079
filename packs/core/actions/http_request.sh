#!/bin/sh
# core.http_request: perform an HTTP request with curl and print one JSON object describing the
# response (status_code, headers, body, json, elapsed_ms, url, success[, error]).
# Any HTTP status exits 0; a missing url or a curl failure exits 1.
set -u
LC_ALL=C
export LC_ALL
case $0 in */*) attune_lib_dir=${0%/*}/lib ;; *) attune_lib_dir=lib ;; esac
. "$attune_lib_dir/attune_params.sh"
. "$attune_lib_dir/urlencode.sh"

url=''
method='GET'
body=''
json_body=''
timeout='30'
verify_ssl='true'
auth_type='none'
auth_username=''
auth_password=''
auth_token=''
follow_redirects='true'
max_redirects='10'
header_lines=''
has_content_type='false'
query=''

# json_body arrives either as JSON text (a string parameter) or, for an object parameter with
# dotenv delivery, flattened into sorted `json_body.<path>` entries. The latter are rebuilt here
# into compact JSON text (objects from the dotted paths; numbers, booleans and arrays kept raw).
jb_json=''
jb_open=''
jb_first=1
jb_add() {
    jb_parent=''
    jb_leaf=$1
    case $1 in *.*) jb_parent=${1%.*}; jb_leaf=${1##*.} ;; esac
    if [ -z "$jb_json" ]; then
        jb_json='{'
    fi
    # Close objects that are not ancestors of this entry.
    while [ -n "$jb_open" ]; do
        case $jb_parent in
            "$jb_open" | "$jb_open".*) break ;;
        esac
        jb_json="$jb_json}"
        case $jb_open in *.*) jb_open=${jb_open%.*} ;; *) jb_open='' ;; esac
        jb_first=0
    done
    # Open the missing ancestors.
    if [ -z "$jb_open" ]; then
        jb_todo=$jb_parent
    elif [ "$jb_parent" = "$jb_open" ]; then
        jb_todo=''
    else
        jb_todo=${jb_parent#"$jb_open".}
    fi
    while [ -n "$jb_todo" ]; do
        jb_seg=${jb_todo%%.*}
        case $jb_todo in *.*) jb_todo=${jb_todo#*.} ;; *) jb_todo='' ;; esac
        [ "$jb_first" = 1 ] || jb_json="$jb_json,"
        attune_json_string "$jb_seg"
        jb_json="$jb_json$_js:{"
        jb_first=1
        if [ -n "$jb_open" ]; then jb_open="$jb_open.$jb_seg"; else jb_open=$jb_seg; fi
    done
    [ "$jb_first" = 1 ] || jb_json="$jb_json,"
    attune_json_string "$jb_leaf"
    attune_json_value "$2"
    jb_json="$jb_json$_js:$_jv"
    jb_first=0
}
jb_finish() {
    while [ -n "$jb_open" ]; do
        jb_json="$jb_json}"
        case $jb_open in *.*) jb_open=${jb_open%.*} ;; *) jb_open='' ;; esac
    done
    jb_json="$jb_json}"
}

attune_param() {
    case $1 in
        url) url=$2 ;;
        method) method=$2 ;;
        body) body=$2 ;;
        json_body) json_body=$2 ;;
        json_body.*) jb_add "${1#json_body.}" "$2" ;;
        timeout) timeout=$2 ;;
        verify_ssl) verify_ssl=$2 ;;
        auth_type) auth_type=$2 ;;
        auth_username) auth_username=$2 ;;
        auth_password) auth_password=$2 ;;
        auth_token) auth_token=$2 ;;
        follow_redirects) follow_redirects=$2 ;;
        max_redirects) max_redirects=$2 ;;
        headers.*)
            case ${1#headers.} in [Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee]) has_content_type='true' ;; esac
            header_lines="$header_lines${1#headers.}: $2$attune_nl"
            ;;
        query_params.*)
            attune_urlencode "${1#query_params.}"
            query_key=$_enc
            attune_urlencode "$2"
            if [ -n "$query" ]; then query="$query&"; fi
            query="$query$query_key=$_enc"
            ;;
    esac
}
attune_read_params
[ -z "$jb_json" ] || { jb_finish; json_body=$jb_json; }

start_ms=0
# Print the failure result and exit 1.
fail() {
    attune_json_string "$2"
    fail_error=$_js
    attune_json_string "$1"
    printf '{"status_code":0,"headers":{},"body":"","json":null,"elapsed_ms":%s,"url":%s,"success":false,"error":%s}\n' \
        "${3:-0}" "$_js" "$fail_error"
    exit 1
}

[ -n "$url" ] || fail '' 'url parameter is required'

if [ -n "$query" ]; then
    case $url in
        *\?*) url="$url&$query" ;;
        *) url="$url?$query" ;;
    esac
fi

attune_upper() {
    _up=''
    _u_s=$1
    while [ -n "$_u_s" ]; do
        _u_rest=${_u_s#?}
        _u_c=${_u_s%"$_u_rest"}
        _u_s=$_u_rest
        case $_u_c in
            a) _u_c=A ;; b) _u_c=B ;; c) _u_c=C ;; d) _u_c=D ;; e) _u_c=E ;; f) _u_c=F ;; g) _u_c=G ;;
            h) _u_c=H ;; i) _u_c=I ;; j) _u_c=J ;; k) _u_c=K ;; l) _u_c=L ;; m) _u_c=M ;; n) _u_c=N ;;
            o) _u_c=O ;; p) _u_c=P ;; q) _u_c=Q ;; r) _u_c=R ;; s) _u_c=S ;; t) _u_c=T ;; u) _u_c=U ;;
            v) _u_c=V ;; w) _u_c=W ;; x) _u_c=X ;; y) _u_c=Y ;; z) _u_c=Z ;;
        esac
        _up=$_up$_u_c
    done
}
attune_upper "${method:-GET}"
method=$_up
attune_int_in_range "$timeout" 1 300 && timeout=$_dec || timeout=30
attune_int_in_range "$max_redirects" 0 1000 && max_redirects=$_dec || max_redirects=10

marker='__ATTUNE_CURL_META__'
set -- -sS -i --max-time "$timeout" --connect-timeout 10 \
    -w "\\n$marker%{http_code}|%{time_total}|%{url_effective}"
if [ "$method" = HEAD ]; then
    # `-X HEAD` would make curl wait for a body that never comes.
    set -- "$@" -I
else
    set -- "$@" -X "$method"
fi
[ "$verify_ssl" != false ] || set -- "$@" -k
[ "$follow_redirects" = false ] || set -- "$@" -L --max-redirs "$max_redirects"
while IFS= read -r header; do
    [ -z "$header" ] || set -- "$@" -H "$header"
done <<EOF_HEADERS
$header_lines
EOF_HEADERS
if [ -n "$json_body" ]; then
    [ "$has_content_type" = true ] || set -- "$@" -H 'Content-Type: application/json'
    set -- "$@" --data-binary "$json_body"
elif [ -n "$body" ]; then
    set -- "$@" --data-binary "$body"
fi
case $auth_type in
    basic) set -- "$@" -u "$auth_username:$auth_password" ;;
    bearer) set -- "$@" -H "Authorization: Bearer $auth_token" ;;
esac

out=$(curl "$@" -- "$url")
rc=$?

if [ "$rc" -ne 0 ]; then
    case $rc in
        6) error='Could not resolve host' ;;
        7) error='Failed to connect to host' ;;
        28) error='Request timeout' ;;
        35) error='SSL/TLS connection error' ;;
        52) error='Empty reply from server' ;;
        56) error='Failure receiving network data' ;;
        *) error="curl error code $rc" ;;
    esac
    fail "$url" "$error"
fi

meta=${out##*"$marker"}
response=${out%"$marker"*}
response=${response%"$attune_nl"}
status_code=${meta%%|*}
meta=${meta#*|}
time_total=${meta%%|*}
effective_url=${meta#*|}

# Split off header blocks (one per redirect or interim response); keep the last one.
separator="$attune_cr$attune_nl$attune_cr$attune_nl"
header_block=''
response_body=$response
while :; do
    case $response_body in
        HTTP/*"$separator"*)
            header_block=${response_body%%"$separator"*}
            response_body=${response_body#*"$separator"}
            ;;
        HTTP/*)
            # Headers without a body (e.g. HEAD): the trailing blank line was eaten by `$( )`.
            header_block=$response_body
            response_body=''
            ;;
        *) break ;;
    esac
done

headers_json='{'
while IFS= read -r line; do
    line=${line%"$attune_cr"}
    case $line in
        HTTP/* | '') continue ;;
        *:*) ;;
        *) continue ;;
    esac
    name=${line%%:*}
    value=${line#*:}
    value=${value#"${value%%[! ]*}"}
    [ "$headers_json" = '{' ] || headers_json="$headers_json,"
    attune_json_string "$name"
    headers_json="$headers_json$_js:"
    attune_json_string "$value"
    headers_json="$headers_json$_js"
done <<EOF_RESPONSE_HEADERS
$header_block
EOF_RESPONSE_HEADERS
headers_json="$headers_json}"

trimmed=${response_body#"${response_body%%[![:space:]]*}"}
trimmed=${trimmed%"${trimmed##*[![:space:]]}"}
case $trimmed in
    '{'*'}' | '['*']') json_value=$trimmed ;;
    *) json_value=null ;;
esac

seconds_part=${time_total%%.*}
fraction=${time_total#*.}
[ "$fraction" != "$time_total" ] || fraction=''
fraction="${fraction}000"
fraction=${fraction%"${fraction#???}"}
attune_decimal "${seconds_part:-0}"
seconds_part=$_dec
attune_decimal "$fraction"
elapsed_ms=$((seconds_part * 1000 + _dec))

case $status_code in
    2??) success=true ;;
    *) success=false ;;
esac
attune_decimal "$status_code"
status_code=$_dec

attune_json_string "$response_body"
body_json=$_js
attune_json_string "$effective_url"
printf '{"status_code":%s,"headers":%s,"body":%s,"json":%s,"elapsed_ms":%s,"url":%s,"success":%s}\n' \
    "$status_code" "$headers_json" "$body_json" "$json_value" "$elapsed_ms" "$_js" "$success"
exit 0
