"""``make fuzz``: schemathesis over every operation of ``/api-spec/openapi.json`` (docs/security.md).

Starts an embedded server (SQLite, in-process bus) in a temporary directory, logs in as its first
identity (an admin), and runs schemathesis with two checks: no response is a server error, and
every status code a route answers is declared in its OpenAPI entry. The exit status is
schemathesis's. ``ATTUNE_FUZZ_EXAMPLES`` sets the examples per operation (CI time: about three
minutes), ``ATTUNE_FUZZ_SEED`` the seed (fixed, so a run is repeatable), ``ATTUNE_FUZZ_WORKERS``
the concurrent workers; extra arguments are passed on to ``schemathesis run``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from attune.testing.deployment import Deployment, make_workdir

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = "not_a_server_error,status_code_conformance"
#: Operations that can take the fuzzing identity's own access away (a password change revokes its
#: tokens, deleting it or its admin assignment): fuzzed last, in a second pass, so they cannot turn
#: the rest of the run into 401s.
SELF_HARM = (
    r"^(PUT|DELETE) /api/v1/identities/\{id\}$"
    r"|^DELETE /api/v1/permissions/assignments/\{id\}$"
    r"|^POST /auth/change-password$"
)


def main(argv: list[str]) -> int:
    examples = os.environ.get("ATTUNE_FUZZ_EXAMPLES", "10")
    with tempfile.TemporaryDirectory(prefix="attune-fuzz-") as tmp:
        workdir = make_workdir(Path(tmp))
        deployment = Deployment(
            workdir=workdir,
            database_url=f"sqlite:///{workdir / 'data' / 'attune.db'}",
            bus_url="memory://",
            mode="embedded",
            # Nothing is fetched from the network: a generated pack source fails at once.
            extra_env={
                "ATTUNE__PACK_REGISTRY__ENABLED": "false",
                "ATTUNE__PACK_INSTALL__FETCH_TIMEOUT": "5",
                "ATTUNE__PACK_INSTALL__ENV_BUILD_TIMEOUT": "20",
                "ATTUNE__PACK_INSTALL__PIP_TIMEOUT": "2",
            },
        )
        try:
            deployment.start()
        except AssertionError:
            # A busy machine can be slow to boot the server: one more try before giving up.
            deployment.stop()
            deployment.processes.clear()
            deployment.start()
        try:
            command = [
                SCHEMATHESIS,
                "run",
                f"{deployment.base}/api-spec/openapi.json",
                "--header",
                f"Authorization: Bearer {deployment.token}",
                "--checks",
                CHECKS,
                "--max-examples",
                examples,
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                os.environ.get("ATTUNE_FUZZ_SEED", "20261206"),
                "--generation-database",
                "none",
                "--request-timeout",
                "30",
                "--workers",
                os.environ.get("ATTUNE_FUZZ_WORKERS", "2"),
                "--no-color",
                *argv,
            ]
            first = subprocess.run([*command, "--exclude-name-regex", SELF_HARM], cwd=workdir, check=False)
            last = subprocess.run([*command, "--include-name-regex", SELF_HARM], cwd=workdir, check=False)
            return first.returncode or last.returncode
        finally:
            deployment.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
