"""uitest.greet: print a greeting and an environment variable (never the secret)."""

import json
import os
import sys
import time

raw = sys.stdin.read().split("---ATTUNE_PARAMS_END---")[0].strip()
params = json.loads(raw or "{}")
greeting = f"Hello {params.get('name')}"
print(greeting.upper() if params.get("mode") == "loud" else greeting, flush=True)
print(f"suffix={os.environ.get('GREETING_SUFFIX', '')}", flush=True)
print("token given" if params.get("token") else "no token", file=sys.stderr, flush=True)
time.sleep(float(os.environ.get("GREET_DELAY", "0")))
