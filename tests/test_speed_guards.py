"""Start-up cost guards: a bake must not import modules it does not need.

pandas (pulled in by pyarrow's ``pa.array`` / ``pq.write_table`` / ``schema.empty_table`` when it
is installed) costs ~0.45 s in every process that imports it, more than baking a shard of small
images; ``pyarrow.compute`` / ``pyarrow.dataset`` cost 0.1-0.6 s. These tests record, in every
process of a real bake (the CLI's forked workers and the API's forkserver workers alike), whether
any of them gets imported, and print the import stack when it does.
"""
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

HEAVY = ("pandas", "pyarrow.compute", "pyarrow.dataset")

# Installed with PYTHONPATH, so it runs in every interpreter the bake starts (including a
# multiprocessing forkserver); forked children inherit the hook.
SITECUSTOMIZE = textwrap.dedent("""
    import os, sys, traceback
    class _Recorder:
        def find_spec(self, name, path=None, target=None):
            if name in os.environ["MIXBAKE_TEST_WATCH"].split(",") and name not in sys.modules:
                with open(os.environ["MIXBAKE_TEST_IMPORT_LOG"], "a") as f:
                    f.write("=== " + name + " imported in pid " + str(os.getpid()) + "\\n")
                    f.write("".join(traceback.format_stack(limit=15)))
            return None
    sys.meta_path.insert(0, _Recorder())
""")


def _jpeg(seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard-src")
    folder = root / "folder"
    rows = []
    for c in ("cat", "dog"):
        (folder / c).mkdir(parents=True)
        for i in range(6):
            data = _jpeg(len(rows))
            (folder / c / f"{i}.jpg").write_bytes(data)
            rows.append(({"bytes": data, "path": f"{c}/{i}.jpg"}, c))
    rows.append((None, "cat"))  # a null image: the skip path runs too
    table = pa.table({"image": pa.array([r[0] for r in rows],
                                        pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array([r[1] for r in rows])})
    pq.write_table(table, root / "data.parquet", row_group_size=5)
    return {"folder": folder, "parquet": root / "data.parquet"}


def _run(tmp_path, code_or_argv, watch=HEAVY):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "imports.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "MIXBAKE_TEST_IMPORT_LOG": str(log), "MIXBAKE_TEST_WATCH": ",".join(watch)}
    proc = subprocess.run([sys.executable, *code_or_argv], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("kind,options", [
    ("folder", ["--format", "parquet"]),
    ("folder", ["--format", "folder", "--image-format", "png"]),
    ("parquet", ["--format", "webdataset", "--image-format", "raw"]),
    ("parquet", ["--format", "parquet"]),
])
def test_a_cli_bake_imports_no_heavy_module_in_any_process(sources, tmp_path, kind, options):
    pytest.importorskip("pandas")  # without pandas installed there is nothing to guard against
    out = tmp_path / "out"
    imports = _run(tmp_path, ["-m", "mixbake", "bake", str(sources[kind]), str(out), "--workers", "2",
                              "--shard-size", "4", "--size", "32", "--on-error", "skip", *options])
    assert imports == ""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["rows"] == 12 and len(manifest["shards"]) >= 2


def test_an_api_bake_with_forkserver_workers_imports_no_heavy_module(sources, tmp_path):
    pytest.importorskip("pandas")
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import mixbake
        if __name__ == "__main__":
            mixbake.bake({str(sources['folder'])!r}, {str(out)!r}, workers=2, shard_size=4, size=32)
    """)
    script = tmp_path / "bake_api.py"
    script.write_text(code)
    assert _run(tmp_path, [str(script)]) == ""
    assert json.loads((out / "manifest.json").read_text())["totals"]["rows"] == 12


def test_the_guard_itself_sees_a_pandas_import(tmp_path):
    pytest.importorskip("pandas")
    imports = _run(tmp_path, ["-c", "import pyarrow as pa; pa.array([1, 2])"])
    assert "=== pandas imported" in imports


def test_a_quiet_bake_does_not_import_the_progress_bar(sources, tmp_path):
    """tqdm reads its own version through importlib.metadata (~40 ms): only a visible bar needs it."""
    out = tmp_path / "out"
    imports = _run(tmp_path, ["-m", "mixbake", "bake", str(sources["folder"]), str(out), "--quiet",
                              "--size", "32"], watch=HEAVY + ("tqdm",))
    assert imports == ""
    assert json.loads((out / "manifest.json").read_text())["totals"]["rows"] == 12
    shown = tmp_path / "shown"
    shown.mkdir()
    imports = _run(shown, ["-m", "mixbake", "bake", str(sources["folder"]), str(out) + "2", "--size", "32"],
                   watch=("tqdm",))
    assert "=== tqdm imported" in imports  # the guard sees it when the bar is on


def test_plan_verify_and_inspect_load_no_codec(sources, tmp_path):
    """Planning, a plain verify and inspect read labels and manifests only: they never import OpenCV
    or libjpeg-turbo (the task and plan modules are pure)."""
    out = tmp_path / "out"
    baked = tmp_path / "baked"
    baked.mkdir()
    script = baked / "bake.py"
    script.write_text(textwrap.dedent(f"""
        import mixbake
        if __name__ == "__main__":
            mixbake.bake({str(sources['folder'])!r}, {str(out)!r}, workers=1, shard_size=4, size=32, quiet=True)
    """))
    assert _run(baked, [str(script)]) == ""
    checked = tmp_path / "checked"
    checked.mkdir()
    imports = _run(checked, ["-c", textwrap.dedent(f"""
        from mixbake.plan_summary import plan_summary
        from mixbake.report import inspect
        from mixbake.verify import verify
        assert plan_summary({str(sources['folder'])!r}, size=32)["rows"] == 12
        assert verify({str(out)!r}) == []
        assert inspect({str(out)!r})["rows"] == 12
    """)], watch=("cv2", "simplejpeg"))
    assert imports == ""
