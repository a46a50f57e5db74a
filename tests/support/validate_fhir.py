#!/usr/bin/env python3
"""Validates FHIR JSON resources with an independent validator: the `fhir.resources`
package's R4B models (pydantic). Each argument is a JSON file holding one resource
or a Bundle (every entry's resource is validated). Exit 1 on any failure."""
import json
import sys

from fhir.resources.R4B import get_fhir_model_class


def validate(resource: dict, where: str) -> list:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        return []
    except Exception as error:  # report every failure, not only the first
        return [f"{where}: {error}"]


def main(paths: list) -> int:
    failures, count = [], 0
    for path in paths:
        with open(path) as f:
            document = json.load(f)
        resources = [e["resource"] for e in document.get("entry", []) if "resource" in e] if document.get("resourceType") == "Bundle" else [document]
        for i, resource in enumerate(resources):
            count += 1
            failures += validate(resource, f"{path}#{i} {resource.get('resourceType')}")
    for failure in failures:
        print(failure)
    print(f"{count} resources validated, {len(failures)} invalid")
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
