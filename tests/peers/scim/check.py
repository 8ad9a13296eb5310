"""Runs scim2-tester (pinned in requirements.txt) against a SCIM server.

    python check.py BASE_URL TOKEN

BASE_URL ends in /scim/v2/. Prints one JSON object: {"total": N, "success": N, "failed": [...]},
where every check whose status is not SUCCESS (SKIPPED included) is listed; exits 1 if any.
"""

import json
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client, raise_exceptions=False)
    failed = [
        {
            "status": r.status.name,
            "title": r.title,
            "resource_type": r.resource_type,
            "reason": (r.reason or "")[:2000],
        }
        for r in results
        if r.status != Status.SUCCESS
    ]
    print(json.dumps({"total": len(results), "success": len(results) - len(failed), "failed": failed}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
