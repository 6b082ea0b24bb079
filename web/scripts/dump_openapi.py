"""Write the API's OpenAPI document to stdout without a running server or database.

Used by the web build (``npm run gen:api``) so the generated client types need no live API.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any, cast

from attune.api.app import create_app
from attune.auth.tokens import TokenService
from attune.settings import load_settings


def main() -> None:
    settings = load_settings(None, {}, ensure_secrets=False, read_files=False)
    # create_app only reads settings and the token service at build time (the database is only
    # handed to the token-version cache); no database is opened.
    platform = SimpleNamespace(settings=settings, tokens=TokenService("openapi-dump-" + "x" * 32), db=None)
    app = create_app(cast(Any, platform))
    json.dump(app.openapi(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
