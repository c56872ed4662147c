"""pytest's set-up for the tests.

The helpers shared by the test modules (make_folder, cli, mixbake_process, all_files, snapshot,
assert_same_tree, ...) live in helpers.py, a plain module the tests import with
``from helpers import ...``: pytest's documentation advises never importing from a conftest.py that
is not in a package. Here pytest is told to rewrite helpers' asserts as it does a test module's, so
that a failing check in a helper shows its values too.
"""
import pytest

pytest.register_assert_rewrite("helpers")
