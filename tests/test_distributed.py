"""Beyond one machine: the Dask executor and object storage (S3 on a local moto server).

Both must produce the same bytes as a local bake; an interrupted S3 build resumes through the
sidecars/manifest (no atomic rename there) to the same bytes.
"""
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import MIXBAKE, all_files as local_files, assert_same_tree, make_folder, mixbake_process

BAKE = ["--size", "16", "--shard-size", "8", "--seed", "4", "-q"]


def noise_picture(c, i, rng):
    return rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)


FOLDER = dict(classes=("ant", "bee", "cow"), per_class=8, picture=noise_picture, name="{i:03d}.png", seed=0)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("src"), **FOLDER)


@pytest.fixture(scope="module")
def local_build(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    mixbake_process("bake", source, out, *BAKE, "--workers", "2", code=0)
    return local_files(out)


def test_dask_local_cluster_gives_the_same_bytes(source, local_build, tmp_path):
    pytest.importorskip("distributed")
    mixbake_process("bake", source, tmp_path / "dask", *BAKE, "--executor", "dask", "--workers", "2", code=0)
    assert_same_tree(tmp_path / "dask", local_build)
    assert len([k for k in local_build if k.startswith("data/")]) >= 3


def test_dask_scheduler_address(source, local_build, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        mixbake_process("bake", source, tmp_path / "sched", *BAKE, "--scheduler", cluster.scheduler_address,
                        code=0)
    assert_same_tree(tmp_path / "sched", local_build)


def test_unreachable_scheduler_is_a_clear_error(source, tmp_path):
    pytest.importorskip("distributed")
    result = mixbake_process("bake", source, tmp_path / "x", *BAKE, "--scheduler", "tcp://127.0.0.1:9")
    assert result.returncode == 1
    assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_scheduler_or_local_executor_with_one_is_a_clear_error(source, tmp_path):
    pytest.importorskip("distributed")
    result = mixbake_process("bake", source, tmp_path / "x", *BAKE, "--scheduler", "foo")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--scheduler 'foo' is not a scheduler address like tcp://HOST:PORT" in result.stderr
    assert not (tmp_path / "x").exists()  # refused before OUT was touched
    both = mixbake_process("bake", source, tmp_path / "y", *BAKE, "--executor", "local", "--scheduler",
                           "tcp://127.0.0.1:9")
    assert both.returncode == 2 and "cannot go with --executor local" in both.stderr
    assert not (tmp_path / "y").exists()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def dask_processes():
    """A real `dask scheduler` and one `dask worker` (each its own interpreter, as on a cluster);
    yields (address, scheduler, worker) and kills whatever is still running at the end."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], **quiet)
    worker = None
    try:
        wait_until(lambda: listening(port) or scheduler.poll() is not None, 60, "the Dask scheduler")
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                                   "--nthreads", "1", "--no-dashboard"], **quiet)
        yield address, scheduler, worker
    finally:
        for process in (worker, scheduler):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


# many small pools: the scheduler is lost with most of them still to bake
MANY = ["--size", "16", "--shard-size", "4", "--pool-size", "8", "--seed", "4", "-q"]


def test_lost_dask_scheduler_is_one_sentence_and_the_rerun_resumes(tmp_path):
    """The scheduler process dies mid-bake: the bake ends at once with one sentence naming it (no
    CancelledError traceback, none of distributed's reconnect noise), and a re-run on a fresh
    scheduler keeps the finished shards and ends with the bytes of an uninterrupted build."""
    pytest.importorskip("distributed")
    src = make_folder(tmp_path / "src", **dict(FOLDER, per_class=40))
    out = tmp_path / "out"
    with dask_processes() as (address, scheduler, worker):
        bake = subprocess.Popen(MIXBAKE + ["bake", str(src), str(out), *MANY, "--scheduler", address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        shards = out / ".mixbake" / "shards"
        wait_until(lambda: bake.poll() is not None or (shards.is_dir() and any(shards.iterdir())), 120,
                   "a first finished shard")
        scheduler.kill()
        worker.kill()  # (an orphaned worker would go on writing shards meanwhile: same bytes, but slower to test)
        stdout, stderr = bake.communicate(timeout=60)
    assert bake.returncode == 1, stderr
    assert stderr == (f"Error: Lost the Dask scheduler at {address}: finished shards are kept; re-run the same "
                      f"command to resume.\n")
    assert not (out / "manifest.json").exists()
    with dask_processes() as (address, _, _):
        resumed = mixbake_process("bake", src, out, *MANY, "--scheduler", address, code=0)
    assert resumed.stdout.startswith("Resumed (") and resumed.stderr == ""
    mixbake_process("bake", src, tmp_path / "fresh", *MANY, "--workers", "1", code=0)
    assert_same_tree(out, tmp_path / "fresh")


# ---------------------------------------------------------------- S3 (moto on loopback)

@pytest.fixture(scope="module")
def s3():
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="bkt")
    yield env, client
    server.stop()


def s3_files(client, prefix):
    listing = client.list_objects_v2(Bucket="bkt", Prefix=prefix + "/").get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: client.get_object(Bucket="bkt", Key=o["Key"])["Body"].read()
            for o in listing if not o["Key"].endswith("/")}


def test_s3_bake_matches_local_and_verifies(source, local_build, s3):
    env, client = s3
    mixbake_process("bake", source, "s3://bkt/run1", *BAKE, "--workers", "2", env=env, code=0)
    assert_same_tree(s3_files(client, "run1"), local_build)
    assert "OK" in mixbake_process("verify", "s3://bkt/run1", "--deep", env=env, code=0).stdout
    again = mixbake_process("bake", source, "s3://bkt/run1", *BAKE, env=env, code=0)
    assert "nothing to do" in again.stdout


def test_s3_tampering_is_caught_by_verify(source, s3):
    env, client = s3
    mixbake_process("bake", source, "s3://bkt/run2", *BAKE, env=env, code=0)
    key = "run2/data/train-00000-of-00003.parquet"
    body = bytearray(client.get_object(Bucket="bkt", Key=key)["Body"].read())
    body[100] ^= 0xFF
    client.put_object(Bucket="bkt", Key=key, Body=bytes(body))
    result = mixbake_process("verify", "s3://bkt/run2", env=env)
    assert result.returncode == 1
    assert "data/train-00000-of-00003.parquet: sha256 differs" in result.stderr


def test_s3_source_reads_folder_and_parquet(source, local_build, s3, tmp_path):
    env, client = s3
    for path in sorted(source.rglob("*.png")):
        client.put_object(Bucket="bkt", Key=f"src/{path.relative_to(source).as_posix()}", Body=path.read_bytes())
    mixbake_process("bake", "s3://bkt/src", tmp_path / "from_s3", *BAKE, env=env, code=0)
    built = local_files(tmp_path / "from_s3")
    # the source's uri differs (manifest.json and the card name it), nothing else
    named = ("manifest.json", "README.md")
    assert_same_tree({k: v for k, v in built.items() if k not in named},
                     {k: v for k, v in local_build.items() if k not in named})
    doc = json.loads(built["manifest.json"])
    assert doc["source"]["uri"] == "s3://bkt/src"
    assert built["README.md"] == local_build["README.md"].replace(str(source).encode(), b"s3://bkt/src").replace(
        f"bake of `{source.name}`".encode(), b"bake of `src`")
    shard = io.BytesIO(local_build["data/train-00000-of-00003.parquet"])
    client.put_object(Bucket="bkt", Key="pq/train.parquet", Body=shard.getvalue())
    mixbake_process("bake", "s3://bkt/pq/train.parquet", tmp_path / "from_pq", "--size", "16", "-q", env=env,
                    code=0)
    rows = pq.read_table(tmp_path / "from_pq" / "labels.parquet").num_rows
    assert rows == pq.read_table(io.BytesIO(shard.getvalue())).num_rows


def test_s3_interrupted_build_resumes_to_the_same_bytes(tmp_path, s3):
    """No atomic rename on S3: a build that stopped midway (here: --on-error fail on an item in a
    later shard) keeps its finished shards via sidecars, and the resumed build equals a fresh one."""
    env, client = s3
    src = make_folder(tmp_path / "src", **FOLDER, bad_at=("cow", 5))
    failed = mixbake_process("bake", src, "s3://bkt/resume", *BAKE, "--workers", "1", env=env)
    assert failed.returncode == 1 and "cow/005.png" in failed.stderr
    partial = s3_files(client, "resume")
    assert "manifest.json" not in partial
    assert any(k.startswith(".mixbake/shards/") for k in partial), "finished shards keep their sidecars"
    mixbake_process("bake", src, "s3://bkt/resume", *BAKE, "--on-error", "skip", env=env, code=0)
    mixbake_process("bake", src, "s3://bkt/fresh", *BAKE, "--on-error", "skip", env=env, code=0)
    resumed, fresh = s3_files(client, "resume"), s3_files(client, "fresh")
    assert_same_tree(resumed, fresh)
    assert json.loads(resumed["manifest.json"])["totals"]["skipped"] == 1
    assert not any(k.startswith(".mixbake") for k in resumed)


def test_s3_parquet_cells_naming_files_are_read_below_the_parquet_files_prefix(s3, tmp_path):
    """On an object store a path-only cell names a key relative to its Parquet file's prefix; an
    absolute path, one climbing out of the source, or a missing key is a bad item saying which."""
    import pyarrow as pa
    from PIL import Image
    env, client = s3
    pngs = []
    for rgb in ((200, 10, 10), (10, 200, 10)):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), rgb).save(buf, "PNG")
        pngs.append(buf.getvalue())
    client.put_object(Bucket="bkt", Key="named/part/images/a.png", Body=pngs[0])
    cell = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    images = pa.array([{"bytes": None, "path": "images/a.png"}, {"bytes": pngs[1], "path": "ignored.png"},
                       {"bytes": None, "path": "/abs/a.png"}, {"bytes": None, "path": "../../up.png"},
                       {"bytes": None, "path": "images/nope.png"}], cell)
    table = pa.table({"image": images, "label": pa.array([0, 1, 0, 1, 0], pa.int64())})
    body = io.BytesIO()
    pq.write_table(table, body)
    client.put_object(Bucket="bkt", Key="named/part/train.parquet", Body=body.getvalue())
    out = tmp_path / "out"
    mixbake_process("bake", "s3://bkt/named/part/*.parquet", out, "--size", "16", "--none", "1",
                    "--mixup", "0", "--cutmix", "0", "--image-format", "png", "--on-error", "skip", "-q",
                    env=env, code=0)
    labels = pq.read_table(out / "labels.parquet").to_pydict()
    assert sorted(labels["src_a"]) == [0, 1]
    shard = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pydict()
    colours = {src: np.asarray(Image.open(io.BytesIO(image["bytes"])).convert("RGB"))[0, 0].tolist()
               for src, image in zip(shard["src_a"], shard["image"])}
    assert colours == {0: [200, 10, 10], 1: [10, 200, 10]}
    with open(out / "errors.jsonl", encoding="utf-8") as f:
        reasons = {e["ref"]: e["reason"] for e in map(json.loads, f)}
    assert reasons == {
        "train.parquet#2": "the image file '/abs/a.png' named in the path field is an absolute path, and the "
                           "Parquet file is on an object store (paths relative to it are followed)",
        "train.parquet#3": "the image file '../../up.png' named in the path field is outside s3://bkt/named/part "
                           "(on an object store, paths below the source are followed)",
        "train.parquet#4": "the image file 'images/nope.png' named in the path field does not exist in "
                           "s3://bkt/named/part",
    }


# an AWS-like secret ("/" and "+" in it, escaped in a URI), and the same secret left unescaped
KEY_ID, SECRET = "AKIDINURITESTING", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SECRETS = (KEY_ID, SECRET, quote(SECRET, safe=""))


def with_credentials(uri):
    return uri.replace("s3://", f"s3://{KEY_ID}:{quote(SECRET, safe='')}@", 1)


def assert_no_secret(*texts):
    for text in texts:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        assert not [s for s in SECRETS if s in text], text


def test_credentials_in_a_uri_are_never_shown_or_stored(tmp_path, local_build, s3):
    """s3://KEY:SECRET@bucket/...: the credentials open the store, and appear nowhere: not in the
    summary, the errors, manifest.json (source.uri), the claim file or the sidecars of an unfinished
    build; and the build id is the one of the same bake with credentials from the environment."""
    env, client = s3
    bare = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    src = make_folder(tmp_path / "src", **FOLDER, bad_at=("cow", 5))
    for path in sorted(src.rglob("*.png")):
        client.put_object(Bucket="bkt", Key=f"csrc/{path.relative_to(src).as_posix()}", Body=path.read_bytes())
    source, out = with_credentials("s3://bkt/csrc"), with_credentials("s3://bkt/creds")
    failed = mixbake_process("bake", source, out, *BAKE, "--workers", "1", env=bare)
    assert failed.returncode == 1 and "cow/005.png" in failed.stderr
    unfinished = s3_files(client, "creds")
    assert ".mixbake/build.json" in unfinished and any(k.startswith(".mixbake/shards/") for k in unfinished)
    assert_no_secret(failed.stdout, failed.stderr, *unfinished.values())
    done = mixbake_process("bake", source, out, *BAKE, "--on-error", "skip", env=bare, code=0)
    assert done.stdout.rstrip().endswith("-> s3://bkt/creds")
    manifest = json.loads(s3_files(client, "creds")["manifest.json"])
    assert manifest["source"]["uri"] == "s3://bkt/csrc"
    errors = [mixbake_process("bake", source, out, *BAKE, "--seed", "5", env=bare),       # another build
              mixbake_process("bake", with_credentials("s3://bkt/none"), tmp_path / "x", env=bare),  # no source
              mixbake_process("bake", "demo", f"s3://{KEY_ID}:{SECRET}@bkt/x", env=bare),  # a URI pyarrow cannot parse
              mixbake_process("verify", out, env=bare)]
    assert [e.returncode for e in errors] == [1, 1, 1, 0]
    assert "OUT 's3://bkt/creds' holds a different build (seed 4 -> 5)" in errors[0].stderr
    assert "Source 's3://bkt/none' does not exist" in errors[1].stderr
    assert errors[2].stderr.startswith("Error: Cannot open 's3://bkt/x': ")
    assert errors[3].stdout.startswith("s3://bkt/creds: OK")
    for result in [done, *errors]:
        assert_no_secret(result.stdout, result.stderr)
    assert_no_secret(*s3_files(client, "creds").values())
    from_env = mixbake_process("bake", "s3://bkt/csrc", "s3://bkt/envcreds", *BAKE, "--on-error", "skip", env=env,
                               code=0)
    assert_same_tree(s3_files(client, "envcreds"), s3_files(client, "creds"))  # the build id is in every shard
    assert json.loads(s3_files(client, "envcreds")["manifest.json"])["build_id"] == manifest["build_id"]
    assert from_env.stdout.rstrip().endswith("-> s3://bkt/envcreds")
    # its source.uri has no credentials: a rebuild from the manifest takes them from the environment
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    mixbake_process("bake", "--from-manifest", tmp_path / "manifest.json", "s3://bkt/replay", "-q",
                    "--on-error", "skip", env=env, code=0)
    assert_same_tree(s3_files(client, "replay"), s3_files(client, "creds"))


def test_redact_leaves_out_user_info_and_secret_query_parameters():
    from mixbake.store import redact, scrub
    assert redact(with_credentials("s3://bkt/out")) == "s3://bkt/out"
    assert redact(f"s3://{KEY_ID}:{SECRET}@bkt/out") == "s3://bkt/out"  # unescaped: "/" in the secret
    assert redact("s3://bkt/x?region=eu-west-1&secret_key=S&session_token=T") == "s3://bkt/x?region=eu-west-1"
    assert redact("gs://b/x?X-Goog-Signature=abc&X-Goog-Credential=c") == "gs://b/x"
    assert redact("https://acct.blob.core.windows.net/c/x?sv=2020&sig=abc") == \
        "https://acct.blob.core.windows.net/c/x?sv=2020"
    for unchanged in ("s3://bkt/a@b/x", "s3://bkt/data/train-?.parquet", "/tmp/a@b:c?d", "demo", "hdfs://nn:8020/p"):
        assert redact(unchanged) == unchanged
    assert scrub(f"cannot parse 's3://{KEY_ID}:{SECRET}@bkt/x' ({SECRET})", f"s3://{KEY_ID}:{SECRET}@bkt/x") == \
        "cannot parse 's3://bkt/x' (***)"


# ---------------------------------------------------------------- S3 that stops answering

@pytest.fixture(scope="module")
def pausable_s3():
    """A moto server in a process of its own, which SIGSTOP can pause (ThreadedMotoServer runs in
    this one); yields (env for mixbake, boto3 client, the server's process)."""
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(port) or server.poll() is not None, 60, "the moto server")
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket="bkt")
        yield env, client, server
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait()


# the shortest patience: a second to connect, a second of silence, no retry
IMPATIENT = dict(MIXBAKE_S3_CONNECT_TIMEOUT="1", MIXBAKE_S3_REQUEST_TIMEOUT="1", MIXBAKE_S3_RETRIES="0")


def test_a_stalled_object_store_is_one_sentence_and_the_rerun_resumes(tmp_path, pausable_s3):
    """The S3 endpoint is paused (SIGSTOP) mid-bake: the bake ends within its timeouts, with one
    sentence naming an object of the build; once the endpoint answers again the same command
    resumes, keeping the shards finished before the pause, to the bytes of an uninterrupted build."""
    env, client, server = pausable_s3
    env = dict(env, **IMPATIENT)
    src = make_folder(tmp_path / "src", **dict(FOLDER, per_class=40))
    args = [*MANY, "--workers", "1"]
    bake = subprocess.Popen(MIXBAKE + ["bake", str(src), "s3://bkt/stall", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: bake.poll() is not None or client.list_objects_v2(
            Bucket="bkt", Prefix="stall/.mixbake/shards/").get("KeyCount", 0), 120, "a first finished shard")
        server.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        stdout, stderr = bake.communicate(timeout=90)
        waited = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGCONT)
        if bake.poll() is None:
            bake.kill()
    assert bake.returncode == 1, stderr
    assert waited < 45, f"the bake took {waited:.0f} s to give up"
    assert stderr.startswith("Error: s3://bkt/stall/") and stderr.count("\n") == 1, stderr
    assert ": the object store did not answer (" in stderr and "MIXBAKE_S3_REQUEST_TIMEOUT" in stderr
    assert stderr.endswith("; finished shards are kept: re-run the same command to resume.\n"), stderr
    resumed = mixbake_process("bake", src, "s3://bkt/stall", *args, env=env, code=0)
    assert resumed.stdout.startswith("Resumed ("), resumed.stdout
    mixbake_process("bake", src, tmp_path / "whole", *args, code=0)
    assert_same_tree(s3_files(client, "stall"), tmp_path / "whole")


def test_s3_patience_settings_are_checked(tmp_path, pausable_s3):
    env, _, _ = pausable_s3
    result = mixbake_process("bake", "demo", "s3://bkt/x", "-q", env=dict(env, MIXBAKE_S3_REQUEST_TIMEOUT="soon"))
    assert result.returncode == 1
    assert result.stderr == "Error: MIXBAKE_S3_REQUEST_TIMEOUT must be a number of seconds > 0, got 'soon'.\n"


def test_s3_patience_reaches_the_workers(monkeypatch):
    """pyarrow pickles an S3 file system without its retry strategy: the store's keeps its retries
    (and its timeouts) on the way to a worker."""
    import pickle

    from mixbake.store import Store
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MIXBAKE_S3_REQUEST_TIMEOUT", "7.5")
    monkeypatch.setenv("MIXBAKE_S3_RETRIES", "4")
    store = pickle.loads(pickle.dumps(Store.open("s3://bkt/out")))
    settings = store._fs.__reduce__()[1][1]
    assert store._fs.retries == 4 and settings["request_timeout"] == 7.5 and settings["connect_timeout"] == 5.0
    assert settings["endpoint_override"] == "http://127.0.0.1:9"  # what from_uri read is kept


def test_a_source_read_that_gets_no_answer_is_not_a_bad_item():
    """With --on-error skip, an item whose read timed out would have been left out of the build."""
    from mixbake.errors import StoreUnreachable
    from mixbake.worker import _chunk_payloads

    class Reader:
        def __init__(self, message):
            self.message = message

        def read_chunk(self, locator, stamp=None):
            raise OSError(self.message)

    bad = {}
    assert list(_chunk_payloads(Reader("Parquet magic bytes not found"), 0, None, range(2), bad)) == []
    assert set(bad) == {0, 1}
    silent = Reader("When reading information for key 'src/a.parquet' in bucket 'bkt': AWS Error "
                    "NETWORK_CONNECTION during GetObject operation: curlCode: 28, Timeout was reached")
    with pytest.raises(StoreUnreachable, match=r"^s3://bkt/src/a.parquet: the object store did not answer "
                                               r"\(GetObject: Timeout was reached\)"):
        list(_chunk_payloads(silent, 0, None, range(2), {}))
