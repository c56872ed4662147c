"""Small helpers shared by the test modules."""
import os


def all_files(root):
    """{relative path (with '/'): bytes} of every file under root, dot-files and dot-dirs included."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root).replace(os.sep, "/")] = f.read()
    return files


def snapshot(root):
    """{relative path: (bytes, mtime_ns)} of every file under root: a no-op must not even touch a file."""
    return {rel: (data, os.stat(os.path.join(root, rel)).st_mtime_ns) for rel, data in all_files(root).items()}
