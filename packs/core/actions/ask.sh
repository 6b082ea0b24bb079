#!/bin/sh
# core.ask: open an inquiry. The parameters (one compact JSON line on stdin, before the end marker)
# are exactly the inquiry request, so they are printed back as {"__inquiry": <parameters>}; the worker
# then keeps the execution waiting until the answer arrives (docs/inquiries.md).
set -u
params=''
IFS= read -r params || true
case $params in
    ---ATTUNE_PARAMS_END---|'') params='{}' ;;
esac
printf '{"__inquiry":%s}\n' "$params"
