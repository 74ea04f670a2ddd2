#!/usr/bin/env python3
"""Validates an OpenAPI 3.1 document against the official schema (tests/fixtures/openapi/).

usage: validate.py URL-or-FILE

Prints every violation and exits 1 if there is one, 0 if the document is valid. Needs the
`jsonschema` package (draft 2020-12 support, 4.18 or newer).
"""

import json
import pathlib
import sys
import urllib.request

import jsonschema

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "fixtures/openapi/oas-3.1-schema-2022-10-07.json"


def load(source):
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:
            return json.load(response)
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    document = load(sys.argv[1])
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(document)"
        print(f"{where}: {error.message}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} violation(s) of the OpenAPI 3.1 schema", file=sys.stderr)
        return 1
    print(f"valid OpenAPI {document.get('openapi')} document ({len(document.get('paths', {}))} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
