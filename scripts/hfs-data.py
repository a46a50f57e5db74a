#!/usr/bin/env python3
"""Builds the two files Helios FHIR Server needs to know the R4 search parameters
(without them `MedicationRequest?patient=X` returns every patient's orders):

    search-parameters-r4.json       a Bundle of every SearchParameter
    compartment-definitions-r4.json a Bundle of every CompartmentDefinition

from the HL7 core package tarball (npm `hl7.fhir.r4b.core`).

    python3 scripts/hfs-data.py PACKAGE.tgz OUT_DIR
"""
import json
import sys
import tarfile
from pathlib import Path


def main(package: str, out: str) -> None:
    params, compartments = [], []
    with tarfile.open(package) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if not name.endswith(".json"):
                continue
            if name.startswith("SearchParameter-") or name.startswith("CompartmentDefinition-"):
                resource = json.load(tar.extractfile(member))
                if name.startswith("CompartmentDefinition-") and name != "CompartmentDefinition-example.json":
                    compartments.append(resource)
                elif name.startswith("SearchParameter-"):
                    params.append(resource)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for file_name, resources in (("search-parameters-r4.json", params), ("compartment-definitions-r4.json", compartments)):
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"fullUrl": r.get("url"), "resource": r} for r in resources]}
        (out_dir / file_name).write_text(json.dumps(bundle))
        print(f"{file_name}: {len(resources)} resources")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
