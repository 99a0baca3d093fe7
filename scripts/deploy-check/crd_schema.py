"""Validates the monitoring.coreos.com/v1 resources in YAML files against the
openAPIV3Schema of their CRDs (deploy/schemas/, vendored from prometheus-operator):
    python crd_schema.py SCHEMA_DIR FILE...
"""
import json, sys, yaml, jsonschema


def strict(schema):
    """As the API server with strict field validation: a field the schema does not
    name is an error (unless the schema keeps unknown fields)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


ok = True
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get('apiVersion') != 'monitoring.coreos.com/v1':
            continue
        schema = strict(json.load(open(f"{sys.argv[1]}/{doc['kind'].lower()}.json")))
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        for e in errors:
            ok = False
            print(f"{path}: {doc['kind']} {'.'.join(map(str, e.absolute_path))}: {e.message}")
        if not errors:
            print(f"{path}: {doc['kind']} {doc['metadata']['name']} is valid against its CRD schema")
sys.exit(0 if ok else 1)
