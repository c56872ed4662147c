"""--recipe, --from-manifest and `mixbake plan`, through the CLI on real files."""
import json

import pyarrow.parquet as pq
import pytest
from helpers import assert_same_tree, cli, make_folder

BASE = ["--size", "24", "--cutout", "0.3", "--seed", "5", "--shard-size", "100", "-q"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    result = cli("bake", "demo", out, *BASE)
    assert result.exit_code == 0, result.output
    return out


def test_from_manifest_rebuilds_bit_for_bit(reference, tmp_path):
    result = cli("bake", "--from-manifest", reference / "manifest.json", tmp_path / "again", "-q")
    assert result.exit_code == 0, result.output
    assert_same_tree(tmp_path / "again", reference)


def test_recipe_gives_the_same_build_and_flags_override(reference, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[bake]\nsource = "demo"\nsize = 24\ncutout = 0.3\nseed = 5\nshard-size = 100\n')
    same = cli("bake", "--recipe", recipe, tmp_path / "same", "-q")
    assert same.exit_code == 0, same.output
    assert_same_tree(tmp_path / "same", reference)
    other = cli("bake", "--recipe", recipe, tmp_path / "other", "--seed", "6", "-q")
    assert other.exit_code == 0, other.output
    doc = json.loads((tmp_path / "other" / "manifest.json").read_text())
    assert doc["seed"] == 6 and doc["config"]["size"] == [24, 24] and doc["config"]["cutout"] == 0.3


def test_recipe_unknown_key_is_a_clear_error(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text("mixupp = 0.5\n")
    result = cli("bake", "--recipe", recipe, "demo", tmp_path / "o")
    assert result.exit_code == 2
    assert "unknown option 'mixupp'" in result.output
    assert not (tmp_path / "o").exists()


def test_missing_out_is_a_usage_error(tmp_path):
    result = cli("bake", "demo")
    assert result.exit_code == 2 and "expected SOURCE OUT" in result.output


def test_plan_matches_the_real_bake(reference):
    result = cli("plan", "demo", *[a for a in BASE if a != "-q"], "--json")
    assert result.exit_code == 0, result.output
    planned = json.loads(result.output)
    doc = json.loads((reference / "manifest.json").read_text())
    assert planned["rows"] == doc["totals"]["rows"] == 288
    assert planned["ops"] == doc["totals"]["ops"]
    assert planned["shards"] == len(doc["shards"])
    assert planned["classes"] == {c: 48 for c in doc["classes"]}
    labels = pq.read_table(reference / "labels.parquet", columns=["shard"]).column("shard").to_pylist()
    per_shard = [labels.count(s) for s in range(len(doc["shards"]))]
    assert planned["shard_rows"] == {"min": min(per_shard), "max": max(per_shard)}


def test_plan_text_output(tmp_path):
    result = cli("plan", "demo", "--copies", "2")
    assert result.exit_code == 0, result.output
    assert "576 samples" in result.output and "circle (48)" in result.output


def test_out_inside_a_folder_source_is_refused(tmp_path):
    make_folder(tmp_path / "src", per_class=2, size=8)
    result = cli("bake", tmp_path / "src", tmp_path / "src" / "out", "--size", "8", "-q")
    assert result.exit_code == 1
    assert "is inside the source folder" in result.output
    assert not (tmp_path / "src" / "out").exists()


def test_plan_and_preview_take_a_recipe_as_bake_does(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[bake]\nsource = "demo"\nsize = 24\ncutout = 0.3\nseed = 5\nshard-size = 100\n')
    from_recipe = cli("plan", "--recipe", recipe, "--json")
    from_flags = cli("plan", "demo", *[a for a in BASE if a != "-q"], "--json")
    assert from_recipe.exit_code == 0 and from_flags.exit_code == 0, from_recipe.output
    assert json.loads(from_recipe.output) == json.loads(from_flags.output)
    assert json.loads(from_recipe.output)["ops"]["cutout"] > 0
    sheet = cli("preview", "--recipe", recipe, "-o", tmp_path / "r.png", "-n", 4)
    assert sheet.exit_code == 0 and "4 samples" in sheet.output and (tmp_path / "r.png").is_file()
    bare = cli("plan")
    assert bare.exit_code == 2 and "expected SOURCE (or a --recipe that names the source)" in bare.output


def test_the_options_reference_is_generated_from_the_declarations():
    """docs/options.md is what the registries say (regenerate: python -m mixbake.reference > docs/options.md),
    and the README's options table names every flag."""
    from pathlib import Path

    from mixbake.config import all_options
    from mixbake.reference import page

    repo = Path(__file__).resolve().parent.parent
    assert (repo / "docs" / "options.md").read_text() == page()
    readme = (repo / "README.md").read_text()
    missing = [o.flag for o in all_options() if o.cli and f"`{o.flag}" not in readme]
    assert not missing, f"README.md's options table lacks {missing}"
