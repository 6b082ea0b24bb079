# Bash-only linear-time JSON string escaping; sourced by attune_params.sh under bash.
attune_json_escape() {
    local s=$1 code char hex
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    if [[ $s == *[$'\001'-$'\037']* ]]; then
        for code in {1..31}; do
            printf -v char "\\$(printf '%03o' "$code")"
            printf -v hex '\\u%04x' "$code"
            s=${s//"$char"/$hex}
        done
    fi
    _esc=$s
}
