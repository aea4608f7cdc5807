"""The local Kaggle's kernels (issue: training on Kaggle's GPUs), through the official client: push, status,
output, quota and the faults a remote training has to survive. The scripts here are tiny: what is tested is
the protocol and Kaggle's file layout, not training."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests
from conftest import SAMPLE_ZIP, SECRETS, official_kaggle
from test_kaggle_fidelity import _port_80_free

from kaggle_digits import local_kaggle

# Every test here runs a whole flow in subprocesses (or a server): not in `make test-fast`.
pytestmark = pytest.mark.slow

SCRIPT = """
import os, sys, urllib.request
print("input:", sorted(os.listdir("../input/digit-recognizer")))
try:
    import kaggle_digits
    print("toolkit: importable")
except ModuleNotFoundError:
    print("toolkit: absent")
try:
    urllib.request.urlopen("http://example.com", timeout=3)
    print("internet: on")
except OSError:
    print("internet: off")
with open("submission.csv", "w") as out:
    out.write("ImageId,Label\\n1,7\\n")
os.makedirs("model", exist_ok=True)
with open("model/weights.bin", "wb") as out:
    out.write(bytes(range(256)))
print("finished", file=sys.stderr)
"""


@pytest.fixture
def kernels_server():
    competition = local_kaggle.competition_from_labeled(SAMPLE_ZIP, max_rows=300)
    settings = local_kaggle.KernelSettings(queue_delay=0.2, stale_status_delay=1.0, gpu_quota_seconds=3600)
    with local_kaggle.LocalKaggleServer([competition], kernels=settings, **SECRETS) as running:
        yield running
    assert running.state.storage_auth_seen == [], running.state.storage_auth_seen


@pytest.fixture
def client(kernels_server, kaggle_env, monkeypatch):
    from kagglesdk import KaggleClient

    for key, value in kaggle_env.items():
        monkeypatch.setenv(key, value)
    with KaggleClient(env=None) as kaggle:
        yield kaggle.kernels.kernels_api_client


def push(
    client,
    text: str = SCRIPT,
    gpu: bool = True,
    timeout: int | None = None,
    sources=("digit-recognizer",),
    shape: str | None = "NvidiaTeslaT4",
    slug: str = "digits-train",
    title: str = "digits train",
):
    from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelRequest

    request = ApiSaveKernelRequest()
    request.slug, request.new_title = f"{local_kaggle.DEMO_USER}/{slug}", title
    request.text, request.language, request.kernel_type = text, "python", "script"
    request.is_private, request.enable_gpu, request.enable_internet = True, gpu, False
    if gpu and shape:
        request.machine_shape = shape
    request.competition_data_sources = list(sources)
    if timeout:
        request.session_timeout_seconds = timeout
    return client.save_kernel(request)


def status(client, version: int | str | None = None):
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

    request = ApiGetKernelSessionStatusRequest()
    request.user_name, request.kernel_slug = local_kaggle.DEMO_USER, "digits-train"
    if version is not None:
        request.version_label = str(version)
    return client.get_kernel_session_status(request)


def wait(client, version: int, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = status(client, f"v{version}")
        if answer.status.name in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED") or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def output(client, version: int, page_size: int = 20, page_token: str = ""):
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    request = ApiListKernelSessionOutputRequest()
    request.user_name, request.kernel_slug, request.version_label = (
        local_kaggle.DEMO_USER,
        "digits-train",
        f"v{version}",
    )
    request.page_size, request.page_token = page_size, page_token
    return client.list_kernel_session_output(request)


def test_a_pushed_script_runs_with_kaggles_layout_offline_and_without_the_toolkit(client, kernels_server):
    pushed = push(client)
    assert pushed.version_number == 1 and not pushed.error and pushed.url.endswith("/code/demo-user/digits-train")
    assert status(client).status.name in ("QUEUED", "RUNNING")
    assert wait(client, 1).status.name == "COMPLETE"
    listing = output(client, 1)
    assert sorted(item.file_name for item in listing.files) == ["model/weights.bin", "submission.csv"]
    log = json.loads(listing.log)
    stdout = "".join(entry["data"] for entry in log if entry["stream_name"] == "stdout")
    assert "input: ['sample_submission.csv', 'test.csv', 'train.csv']" in stdout
    assert "toolkit: absent" in stdout and "internet: off" in stdout
    assert any(entry["stream_name"] == "stderr" and "finished" in entry["data"] for entry in log)
    # The files come from the storage host through signed URLs; the API host never serves them.
    weights = next(item for item in listing.files if item.file_name == "model/weights.bin")
    assert not weights.url.startswith(kernels_server.url)
    assert requests.get(weights.url, timeout=10).content == bytes(range(256))
    assert requests.get(weights.url.replace("X-Goog-Signature=", "X-Goog-Signature=0"), timeout=10).status_code == 403


def held_until(release: Path) -> str:
    """A kernel script that runs until the test creates `release`: the test, not a sleep, says when it ends."""
    return f"import pathlib, time\nwhile not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.05)\n"


def test_versions_are_named_v_n_and_the_latest_reads_stale_just_after_a_push(client, tmp_path):
    from requests.exceptions import HTTPError

    push(client)
    assert wait(client, 1).status.name == "COMPLETE"
    with pytest.raises(HTTPError) as bare:
        status(client, 1)  # a bare number is 404 on kaggle.com too (Kaggle/kaggle-cli#1200)
    assert bare.value.response.status_code == 404
    again = push(client, held_until(tmp_path / "release"))
    assert again.version_number == 2  # every push is a new version: SaveKernel is not idempotent
    # For a moment the latest version is still the previous, finished session: a client must pin v2.
    assert status(client).status.name == "COMPLETE"
    assert status(client, "v2").status.name in ("QUEUED", "RUNNING")
    (tmp_path / "release").touch()
    assert wait(client, 2).status.name == "COMPLETE"


def test_a_failing_script_is_an_error_with_its_log(client):
    push(client, "print('loading'); raise SystemExit('out of memory, say')")
    answer = wait(client, 1)
    assert answer.status.name == "ERROR" and "exit code 1" in answer.failure_message
    log = json.loads(output(client, 1).log)
    assert any("out of memory, say" in entry["data"] for entry in log if entry["stream_name"] == "stderr")


def test_a_session_past_its_time_limit_is_stopped(client):
    push(client, "import time; time.sleep(60)", timeout=1)
    answer = wait(client, 1, timeout=30)
    assert answer.status.name == "ERROR" and "run-time limit" in answer.failure_message


def test_a_gpu_push_past_two_running_sessions_is_refused_not_queued(client, kernels_server):
    """kaggle.com: at most 2 batch GPU sessions of an account at once; the third push is refused with HTTP 200 and
    `error` set, and nothing is made (Kaggle/kaggle-cli#185). The CPU is not capped; a freed slot takes a push again."""
    first = push(client, "import time; time.sleep(30)", slug="one", title="one")
    second = push(client, "import time; time.sleep(30)", slug="two", title="two")
    assert first.version_number == 1 and second.version_number == 1
    refused = push(client, "print('three')", slug="three", title="three")
    assert refused.error == "Maximum batch GPU session count of 2 reached." and not refused.version_number
    assert ("demo-user", "three") not in kernels_server.state.kernels.kernels
    assert push(client, "print('cpu')", gpu=False, slug="cpu", title="cpu").version_number == 1
    delete(client, "one")
    assert push(client, "print('three')", slug="three", title="three").version_number == 1


def test_the_accelerator_is_recorded_by_name_and_enable_gpu_alone_gets_a_p100(client, kernels_server):
    push(client, "print(1)", slug="t4", title="t4")
    push(client, "print(1)", shape=None, slug="legacy", title="legacy")
    push(client, "print(1)", gpu=False, slug="cpu", title="cpu")
    shapes = {
        kernel.slug: kernel.sessions[-1].machine_shape for kernel in kernels_server.state.kernels.kernels.values()
    }
    assert shapes == {"t4": "NvidiaTeslaT4", "legacy": "NvidiaTeslaP100", "cpu": ""}
    with pytest.raises(requests.exceptions.HTTPError) as unknown:
        push(client, "print(1)", shape="NvidiaTeslaK80", slug="k80", title="k80")
    assert unknown.value.response.status_code == 400


def test_a_title_over_50_characters_is_answered_with_500(client):
    with pytest.raises(requests.exceptions.HTTPError) as refused:
        push(client, "print(1)", slug="x" * 51, title="x" * 51)
    assert refused.value.response.status_code == 500
    assert push(client, "print(1)", slug="x" * 50, title="x" * 50).version_number == 1


def test_a_kernel_the_account_does_not_have_is_403_and_get_kernel_answers_its_version(client):
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    request = ApiGetKernelRequest()
    request.user_name, request.kernel_slug = local_kaggle.DEMO_USER, "digits-train"
    with pytest.raises(requests.exceptions.HTTPError) as missing:
        client.get_kernel(request)
    assert missing.value.response.status_code == 403
    with pytest.raises(requests.exceptions.HTTPError) as wrong_slug:
        status(client)
    assert wrong_slug.value.response.status_code == 403  # not 404 (Kaggle/kaggle-cli#951)
    push(client, "print(1)", gpu=False)
    push(client, "print(2)", gpu=False)
    assert client.get_kernel(request).metadata.current_version_number == 2


def test_delete_kernel_stops_its_session_and_frees_the_gpu(client, kernels_server):
    push(client, "import time; time.sleep(60)")
    deadline = time.monotonic() + 30
    (session,) = kernels_server.state.kernels.sessions.values()
    while session.status != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    delete(client, "digits-train")
    assert session.status == "CANCEL_ACKNOWLEDGED" and session.process.wait(timeout=10) != 0
    with pytest.raises(requests.exceptions.HTTPError) as gone:
        status(client, "v1")
    assert gone.value.response.status_code == 403


def test_the_quota_counts_time_reserved_by_running_sessions(client, kernels_server, tmp_path):
    from kagglesdk.kernels.types.kernels_api_service import ApiGetAcceleratorQuotaStatisticsRequest

    push(client, held_until(tmp_path / "release"))
    while status(client).status.name != "RUNNING":  # the session holds the GPU until the test lets it end
        time.sleep(0.05)
    running = client.get_accelerator_quota_statistics(ApiGetAcceleratorQuotaStatisticsRequest()).gpu_quota
    assert running.time_reserved.total_seconds() > 0 and running.time_used.total_seconds() == 0
    (tmp_path / "release").touch()
    assert wait(client, 1).status.name == "COMPLETE"
    done = client.get_accelerator_quota_statistics(ApiGetAcceleratorQuotaStatisticsRequest()).gpu_quota
    assert (
        done.time_reserved.total_seconds() == 0
        and done.time_used.total_seconds() >= running.time_reserved.total_seconds()
    )
    # Time held elsewhere (a notebook in the browser) counts too: a push that would pass the quota is refused.
    kernels_server.state.kernels.settings.gpu_reserved_seconds = 3600
    assert "GPU quota" in push(client, "print(1)", slug="more", title="more").error


def delete(client, slug: str) -> None:
    from kagglesdk.kernels.types.kernels_api_service import ApiDeleteKernelRequest

    request = ApiDeleteKernelRequest()
    request.user_name, request.kernel_slug = local_kaggle.DEMO_USER, slug
    assert not client.delete_kernel(request).error_message


def test_cancel_takes_a_session_id(client, kernels_server):
    from kagglesdk.kernels.types.kernels_api_service import ApiCancelKernelSessionRequest

    push(client, "import time; time.sleep(60)")
    session_id = next(iter(kernels_server.state.kernels.sessions))  # no public response carries it
    request = ApiCancelKernelSessionRequest()
    request.kernel_session_id = session_id
    assert not client.cancel_kernel_session(request).error_message
    assert wait(client, 1, timeout=30).status.name == "CANCEL_ACKNOWLEDGED"


def test_gpu_quota_is_reported_and_a_push_past_it_is_refused(client, kernels_server):
    from kagglesdk.kernels.types.kernels_api_service import ApiGetAcceleratorQuotaStatisticsRequest

    quota = client.get_accelerator_quota_statistics(ApiGetAcceleratorQuotaStatisticsRequest())
    assert quota.gpu_quota.total_time_allowed.total_seconds() == 3600 and quota.gpu_quota.time_used.total_seconds() == 0
    assert quota.quota_refresh_time is not None
    kernels_server.state.kernels.settings.gpu_used_seconds = 3600
    refused = push(client)
    assert "GPU quota" in refused.error and not refused.version_number
    assert push(client, gpu=False).version_number == 1  # the CPU is not rationed


def test_unknown_competition_sources_are_listed_not_fatal(client):
    pushed = push(client, "print('hello')", sources=("digit-recognizer", "no-such-competition"))
    assert pushed.invalid_competition_sources == ["no-such-competition"] and pushed.version_number == 1


def test_output_is_paged(client):
    push(client, "import pathlib\nfor n in range(5): pathlib.Path(f'part-{n}.txt').write_text(str(n))")
    assert wait(client, 1).status.name == "COMPLETE"
    first = output(client, 1, page_size=3)
    second = output(client, 1, page_size=3, page_token=first.next_page_token)
    names = [item.file_name for item in first.files + second.files]
    assert names == [f"part-{n}.txt" for n in range(5)] and not second.next_page_token


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not _port_80_free(),
    reason="KAGGLE_API_ENVIRONMENT=LOCALHOST means http://localhost on port 80: needs root and a free port 80",
)
def test_the_official_kaggle_cli_pushes_follows_and_fetches_a_kernel(kaggle_env, tmp_path):
    competition = local_kaggle.competition_from_labeled(SAMPLE_ZIP, max_rows=300)
    env = {**os.environ, **kaggle_env, "KAGGLE_API_ENVIRONMENT": "LOCALHOST"}
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "train.py").write_text(SCRIPT)
    (folder / "kernel-metadata.json").write_text(
        json.dumps(
            {
                "id": f"{local_kaggle.DEMO_USER}/digits-train",
                "title": "digits train",
                "code_file": "train.py",
                "language": "python",
                "kernel_type": "script",
                "is_private": True,
                "enable_gpu": True,
                "machine_shape": "NvidiaTeslaT4",
                "enable_internet": False,
                "competition_sources": ["digit-recognizer"],
            }
        )
    )

    def cli(*args):
        return official_kaggle("kernels", *args, env=env, cwd=tmp_path)

    settings = local_kaggle.KernelSettings(queue_delay=0.1, stale_status_delay=0.1)
    with local_kaggle.LocalKaggleServer([competition], port=80, kernels=settings, **SECRETS) as server:
        assert "Kernel version 1 successfully pushed" in cli("push", "-p", str(folder))
        deadline = time.monotonic() + 60
        while "COMPLETE" not in cli("status", f"{local_kaggle.DEMO_USER}/digits-train") and time.monotonic() < deadline:
            time.sleep(0.2)
        cli("output", f"{local_kaggle.DEMO_USER}/digits-train", "-p", str(tmp_path / "out"))
        assert (tmp_path / "out" / "submission.csv").read_text() == "ImageId,Label\n1,7\n"
        assert (tmp_path / "out" / "model" / "weights.bin").read_bytes() == bytes(range(256))
        assert "toolkit: absent" in (tmp_path / "out" / "digits-train.log").read_text()
        assert (
            server.state.kernels.kernels[(local_kaggle.DEMO_USER, "digits-train")].sessions[0].machine_shape
            == "NvidiaTeslaT4"
        )
        cli("delete", f"{local_kaggle.DEMO_USER}/digits-train", "-y")
        assert (local_kaggle.DEMO_USER, "digits-train") not in server.state.kernels.kernels
        assert server.state.storage_auth_seen == []
