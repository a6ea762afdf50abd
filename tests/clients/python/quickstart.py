"""The README's quickstart through the Python client openapi-python-client generates from
openapi/openapi.json (the test generates it as the package `roughy_client`).

Usage: python3 quickstart.py <base_url> <api_key> <media_file>
Prints one JSON line: {"ok": true, ...} (exit 0), or fails with a traceback.

Type-checked with `mypy --strict` before it runs: the annotated assignments below fail to
type-check if the generated models type an always-present field as optional (`Unset`).
"""

import json
import sys
import time

import httpx

from roughy_client import AuthenticatedClient
from roughy_client.api.assets import create_asset, delete_asset, get_asset
from roughy_client.api.credits_ import get_balance
from roughy_client.api.projects import create_project
from roughy_client.api.uploads import get_upload_offset
from roughy_client.models import (
    AssetDetailDto,
    AssetDto,
    AssetStateDto,
    BalanceDto,
    CreateAssetBody,
    CreateProjectBody,
    ProjectDto,
)


def main(base_url: str, api_key: str, path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    client = AuthenticatedClient(base_url=base_url, token=api_key, raise_on_unexpected_status=True)

    project = create_project.sync(client=client, body=CreateProjectBody(name="generated sdk"))
    assert isinstance(project, ProjectDto), project
    project_name: str | None = project.name

    created = create_asset.sync_detailed(
        client=client, body=CreateAssetBody(project_id=project.id, size_bytes=len(data))
    )
    asset = created.parsed
    assert isinstance(asset, AssetDto), created
    location = created.headers["location"]
    upload_url: str | None = asset.upload_url
    assert upload_url == location, (upload_url, location)

    # HEAD through the generated operation; the PATCH through the client's own httpx client:
    # the generator skips application/offset+octet-stream bodies (a limit of the tool).
    head = get_upload_offset.sync_detailed(id=location.rsplit("/", 1)[1], client=client, tus_resumable="1.0.0")
    assert head.status_code == 200 and head.headers["upload-offset"] == "0", head
    patched = client.get_httpx_client().patch(
        location,
        content=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert patched.status_code == 204, patched.text

    deadline = time.monotonic() + 60
    while True:
        detail = get_asset.sync(id=asset.id, client=client)
        assert isinstance(detail, AssetDetailDto), detail
        if detail.state not in (AssetStateDto.PENDING_UPLOAD, AssetStateDto.PROCESSING):
            break
        assert time.monotonic() < deadline, "the asset did not settle"
        time.sleep(0.1)
    assert detail.state == AssetStateDto.READY, detail
    duration: str | None = detail.duration_seconds
    download_url: str | None = detail.download_url
    size: int | None = detail.size_bytes
    error_code: str | None = detail.error_code
    assert duration is not None and download_url is not None and error_code is None
    assert size == len(data)
    downloaded = httpx.get(download_url).content
    assert downloaded == data, "downloaded bytes differ"

    balance = get_balance.sync(client=client)
    assert isinstance(balance, BalanceDto), balance
    deleted = delete_asset.sync_detailed(id=asset.id, client=client)
    assert deleted.status_code == 204, deleted
    print(
        json.dumps(
            {
                "ok": True,
                "project_name": project_name,
                "asset": asset.id,
                "duration_seconds": duration,
                "seconds": float(duration),
                "balance": balance.balance,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
