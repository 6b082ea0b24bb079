# Shared helpers for the core actions (POSIX sh; sourced, not run).
#
# Parameters arrive on stdin in dotenv format: one `KEY='value'` entry per parameter, `'` inside a
# value written as `'\''`, values may span lines, and the block ends with a line
# `---ATTUNE_PARAMS_END---` (an optional secrets JSON line follows it and is not read here).
# attune_read_params calls the script's `attune_param KEY VALUE` once per entry, quotes stripped.

attune_nl='
'
attune_cr=$(printf '\r')

# Decode one complete entry held in $1 into _ap_key/_ap_value; status 1 while a quote is open.
attune_decode_entry() {
    _ap_key=${1%%=*}
    _ap_rest=${1#*=}
    _ap_value=''
    case $_ap_rest in
        "'"*) ;;
        '"'*'"') _ap_value=${_ap_rest#\"}; _ap_value=${_ap_value%\"}; return 0 ;;
        *) _ap_value=$_ap_rest; return 0 ;;
    esac
    while :; do
        _ap_rest=${_ap_rest#\'}
        case $_ap_rest in
            *"'"*) ;;
            *) return 1 ;;
        esac
        _ap_value=$_ap_value${_ap_rest%%\'*}
        _ap_rest=${_ap_rest#*\'}
        case $_ap_rest in
            '') return 0 ;;
            "\\''"*) _ap_value="$_ap_value'"; _ap_rest=${_ap_rest#??} ;;
            *) _ap_value=$_ap_value$_ap_rest; return 0 ;;
        esac
    done
}

attune_read_params() {
    _ap_pending=''
    while IFS= read -r _ap_line || [ -n "$_ap_line" ]; do
        if [ -z "$_ap_pending" ]; then
            case $_ap_line in
                ---ATTUNE_PARAMS_END---) break ;;
                *=*) _ap_pending=$_ap_line ;;
                *) continue ;;
            esac
        else
            _ap_pending=$_ap_pending$attune_nl$_ap_line
        fi
        if attune_decode_entry "$_ap_pending"; then
            attune_param "$_ap_key" "$_ap_value"
            _ap_pending=''
        fi
    done
    if [ -n "$_ap_pending" ]; then
        # Unterminated quote: keep what was read rather than dropping the parameter.
        _ap_rest=${_ap_pending#*=}
        attune_param "${_ap_pending%%=*}" "${_ap_rest#\'}"
    fi
}

# Replace every $2 in $1 by $3; result in _rep (portable fallback, quadratic on many matches).
attune_replace() {
    _rep=''
    _rp_s=$1
    while :; do
        case $_rp_s in
            *"$2"*) ;;
            *) break ;;
        esac
        _rep=$_rep${_rp_s%%"$2"*}$3
        _rp_s=${_rp_s#*"$2"}
    done
    _rep=$_rep$_rp_s
}

# JSON-escape $1 into _esc (without surrounding quotes).
attune_json_escape() {
    attune_replace "$1" '\' '\\'
    attune_replace "$_rep" '"' '\"'
    attune_replace "$_rep" "$attune_nl" '\n'
    attune_replace "$_rep" "$attune_cr" '\r'
    attune_replace "$_rep" '	' '\t'
    _esc=$_rep
}

# Under bash, replace the portable escaper by a linear-time one (kept in a separate file so
# that a POSIX shell never has to parse bash-only expansions).
if [ -n "${BASH_VERSION:-}" ] && [ -f "${attune_lib_dir:-.}/json_escape.bash" ]; then
    . "${attune_lib_dir:-.}/json_escape.bash"
fi

# True when $1 is a JSON number literal.
attune_is_number() {
    _n=${1#-}
    case $_n in
        '' | *[!0-9.eE+-]* | [!0-9]* | 0[0-9]* | *[!0-9] | *.*.* | *[0-9.][+-]*) return 1 ;;
    esac
    _int=${_n%%[.eE]*}
    case $_int in *[!0-9]*) return 1 ;; esac
    return 0
}

# JSON value for a dotenv value into _jv: booleans, numbers and compact JSON arrays/objects raw,
# an empty value as $2 (default ""), anything else as a JSON string.
attune_json_value() {
    case $1 in
        true | false | null) _jv=$1 ;;
        '') _jv=${2:-'""'} ;;
        '['*']' | '{'*'}') _jv=$1 ;;
        *)
            if attune_is_number "$1"; then
                _jv=$1
            else
                attune_json_escape "$1"
                _jv="\"$_esc\""
            fi
            ;;
    esac
}

# A JSON string literal for $1 into _js.
attune_json_string() {
    attune_json_escape "$1"
    _js="\"$_esc\""
}

# Strip leading zeros from a decimal integer string (avoids octal in $(( ))); result in _dec.
attune_decimal() {
    _dec=$1
    while :; do
        case $_dec in
            0?*) _dec=${_dec#0} ;;
            *) break ;;
        esac
    done
}

# True when $1 is an integer between $2 and $3 (inclusive); sets _dec.
attune_int_in_range() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    attune_decimal "$1"
    [ "${#_dec}" -le 9 ] && [ "$_dec" -ge "$2" ] && [ "$_dec" -le "$3" ]
}
