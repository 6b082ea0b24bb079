#!/bin/sh
# uitest.greet: print a greeting and an environment variable (never the secret).
# Parameters arrive on stdin as KEY='value' lines ended by ---ATTUNE_PARAMS_END---.
name='' mode='' token=''
while IFS= read -r line; do
    [ "$line" = "---ATTUNE_PARAMS_END---" ] && break
    value=${line#*=}
    value=${value#\'}
    value=${value%\'}
    case $line in
        name=*) name=$value ;;
        mode=*) mode=$value ;;
        token=*) token=$value ;;
    esac
done
if [ "$mode" = loud ]; then
    printf 'HELLO %s\n' "$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')"
else
    printf 'Hello %s\n' "$name"
fi
printf 'suffix=%s\n' "${GREETING_SUFFIX:-}"
if [ -n "$token" ]; then echo "token given" >&2; else echo "no token" >&2; fi
sleep "${GREET_DELAY:-0}"
