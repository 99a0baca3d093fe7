"""Verifies one relayed request with the Standard Webhooks reference library
(PyPI `standardwebhooks`), which this project did not write. Exits 0 when valid."""
import json
import sys

from standardwebhooks.webhooks import Webhook

case = json.load(open(sys.argv[1]))
headers = {k: v for k, v in case["headers"].items() if k.startswith("webhook-")}
try:
    Webhook(case["secret"]).verify(case["body"], headers)
except Exception as error:  # the library raises WebhookVerificationError
    print(f"refused: {error}", file=sys.stderr)
    sys.exit(1)
print("verified")
