"""Jobs kept as files: a sandbox in another process (here, another instance with the
same folder) serves the results of jobs this one started."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sandbox_helpers import KEY, FakeClock
from test_accounts import start_creative

from stability_connector.sandbox import Sandbox


@pytest.mark.anyio
async def test_another_sandbox_with_the_folder_serves_the_result(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    first = make_sandbox(jobs_dir=tmp_path, job_seconds=0)
    async with first.client(api_key=KEY) as client:
        job_id = await start_creative(client)
        expected = await client.get(f"/v2beta/results/{job_id}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{job_id}.bin", f"{job_id}.json"]

    second = make_sandbox(jobs_dir=tmp_path)
    async with second.client(api_key=KEY) as client:
        served = await client.get(f"/v2beta/results/{job_id}")
    assert served.status_code == 200
    assert served.content == expected.content
    assert served.headers["seed"] == "5"
    assert second.balance(KEY) == second.config.credits - 60  # charged where it is served


@pytest.mark.anyio
async def test_a_job_kept_as_a_file_is_in_progress_until_its_time(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock, tmp_path: Path
) -> None:
    async with make_sandbox(jobs_dir=tmp_path).client(api_key=KEY) as client:
        job_id = await start_creative(client)
    async with make_sandbox(jobs_dir=tmp_path).client(api_key=KEY) as client:
        early = await client.get(f"/v2beta/results/{job_id}")
        clock.advance(20)  # the wall clock has hardly moved: about 20 s were left
        done = await client.get(f"/v2beta/results/{job_id}")
    assert early.status_code == 202 and early.json()["status"] == "in-progress"
    assert done.status_code == 200


@pytest.mark.anyio
async def test_other_keys_unknown_ids_and_odd_ids_get_404(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    async with make_sandbox(jobs_dir=tmp_path).client(api_key=KEY) as client:
        job_id = await start_creative(client)
    second = make_sandbox(jobs_dir=tmp_path)
    async with second.client(api_key="sk-someone-else") as other:
        stolen = await other.get(f"/v2beta/results/{job_id}")
    async with second.client(api_key=KEY) as client:
        unknown = await client.get(f"/v2beta/results/{'0' * 64}")
        odd = await client.get("/v2beta/results/..%2f..%2fetc")
        wrong_family = await client.get(f"/v2beta/audio/results/{job_id}")
    for response in (stolen, unknown, odd, wrong_family):
        assert response.status_code == 404, response.text


@pytest.mark.anyio
async def test_expired_job_files_are_removed(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    async with make_sandbox(jobs_dir=tmp_path, job_ttl=0.0).client(api_key=KEY) as client:
        job_id = await start_creative(client)
        gone = (
            await make_sandbox(jobs_dir=tmp_path)
            .client(api_key=KEY)
            .get(f"/v2beta/results/{job_id}")
        )
    assert gone.status_code == 404
    assert list(tmp_path.iterdir()) == []
