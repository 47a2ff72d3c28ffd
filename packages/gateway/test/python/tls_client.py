"""The Python SDK against a gateway serving HTTPS with a private CA: run as
`python tls_client.py <gateway-url> <ca-file>`; prints one JSON line of what it saw."""

import json
import sys

from beta9 import APIConnectionError, Client

url, ca_file = sys.argv[1], sys.argv[2]
seen = {}
with Client(host=url, ca_file=ca_file) as trusting:
    seen["with_ca_file"] = trusting.health().status
try:
    with Client(host=url) as plain:
        plain.health()
    seen["without"] = None
except APIConnectionError as err:
    seen["without"] = {"code": err.code, "message": str(err)}
print(json.dumps(seen))
