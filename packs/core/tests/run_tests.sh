#!/bin/sh
# Core pack shell tests. Run from the pack root: `sh tests/run_tests.sh`.
# Actions are fed their parameters on stdin in dotenv format, as the worker does, and run with
# /bin/bash like the core.shell runtime. Prints a "simple" summary (packs.md §15).
set -u

total=0
passed=0
failed=0

# check NAME EXPECTED_EXIT EXPECTED_STDOUT ACTION [PARAM_LINES]
check() {
    total=$((total + 1))
    output=$(printf '%s\n---ATTUNE_PARAMS_END---\n' "${5:-}" | /bin/bash "actions/$4" 2>/dev/null)
    code=$?
    if [ "$code" = "$2" ] && [ "$output" = "$3" ]; then
        passed=$((passed + 1))
        echo "PASS: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1 (exit $code, output '$output')"
    fi
}

nl='
'
check "echo prints the message" 0 "Hello, Attune!" echo.sh "message='Hello, Attune!'"
check "echo unescapes quotes" 0 "it's here" echo.sh "message='it'\\''s here'"
check "echo without a message prints nothing" 0 "" echo.sh ""
check "noop succeeds" 0 "No operation completed successfully" noop.sh ""
check "noop prints the message" 0 "[NOOP] hi${nl}No operation completed successfully" noop.sh "message='hi'"
check "noop returns the exit code" 3 "No operation completed successfully" noop.sh "exit_code='3'"
check "noop rejects a bad exit code" 1 "" noop.sh "exit_code='256'"
check "sleep zero seconds" 0 "Slept for 0 seconds" sleep.sh "seconds='0'"
check "sleep prints the message" 0 "waiting${nl}Slept for 0 seconds" sleep.sh "message='waiting'${nl}seconds='0'"
check "sleep rejects a non-integer" 1 "" sleep.sh "seconds='soon'"
check "sleep rejects too many seconds" 1 "" sleep.sh "seconds='3601'"
check "http_request requires a url" 1 \
    '{"status_code":0,"headers":{},"body":"","json":null,"elapsed_ms":0,"url":"","success":false,"error":"url parameter is required"}' \
    http_request.sh ""

echo ""
echo "Total Tests: $total"
echo "Passed: $passed"
echo "Failed: $failed"
echo "Skipped: 0"
[ "$failed" -eq 0 ]
