"""Beyond one machine: the Dask executor and object storage (S3 on a local moto server).

Both must produce the same bytes as a local bake; an interrupted S3 build resumes through the
sidecars/manifest (no atomic rename there) to the same bytes.
"""
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import all_files as local_files, assert_same_tree, make_folder, mixbake_process

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
