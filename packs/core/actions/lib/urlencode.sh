# Percent-encode $1 (RFC 3986 unreserved characters kept) into _enc. POSIX sh; sourced.
# Runs with LC_ALL=C so `?` matches single bytes and multi-byte UTF-8 is encoded byte by byte.
attune_urlencode() {
    _enc=''
    _ue_s=$1
    while [ -n "$_ue_s" ]; do
        _ue_rest=${_ue_s#?}
        _ue_c=${_ue_s%"$_ue_rest"}
        _ue_s=$_ue_rest
        case $_ue_c in
            [a-zA-Z0-9.~_-]) _enc=$_enc$_ue_c ;;
            *) _enc=$_enc$(printf '%%%02X' "'$_ue_c") ;;
        esac
    done
}
