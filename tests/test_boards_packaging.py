"""firmware_lib/package.json and manifest.py agree with certpin.__version__ and the module list;
the board folders carry what a user needs; `mpremote mip install` works from a checkout."""
import ast
import json
import os
import re

import pytest

from support.vboard_fixtures import vboard  # noqa: F401  (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "firmware_lib")
BOARDS = ["ESP32_GENERIC", "RPI_PICO_W", "UNIX"]


def library_version():
    """__version__ read from the source (the one place the version lives), without importing."""
    with open(os.path.join(LIB, "certpin", "__init__.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__version__"]:
            return node.value.value
    raise AssertionError("no __version__ in firmware_lib/certpin/__init__.py")


def modules():
    return sorted(n for n in os.listdir(os.path.join(LIB, "certpin")) if n.endswith(".py"))


def expected_package_json():
    lines = ",\n".join('    ["certpin/%s", "certpin/%s"]' % (n, n) for n in modules())
    return '{\n  "urls": [\n%s\n  ],\n  "version": "%s"\n}\n' % (lines, library_version())


def test_package_json_lists_every_module_and_the_version():
    with open(os.path.join(LIB, "package.json")) as f:
        text = f.read()
    data = json.loads(text)
    assert data["version"] == library_version()
    assert [u[0] for u in data["urls"]] == ["certpin/" + n for n in modules()]
    assert text == expected_package_json(), "regenerate firmware_lib/package.json as:\n" + expected_package_json()


def test_manifest_version_is_the_library_version():
    with open(os.path.join(LIB, "manifest.py")) as f:
        text = f.read()
    m = re.search(r'version="([^"]+)"', text)
    assert m and m.group(1) == library_version(), 'set version="%s" in firmware_lib/manifest.py' % library_version()
    assert 'package("certpin")' in text


def test_manifest_runs_with_micropythons_manifest_functions():
    calls = []
    env = {"metadata": lambda **kw: calls.append(("metadata", kw)),
           "package": lambda *a, **kw: calls.append(("package", a))}
    with open(os.path.join(LIB, "manifest.py")) as f:
        exec(f.read(), env)
    assert ("package", ("certpin",)) in calls


@pytest.mark.parametrize("board", BOARDS)
def test_board_folder_has_example_readme_and_a_compilable_main(board):
    d = os.path.join(ROOT, "boards", board)
    for name in ("main.py", "README.md"):
        assert os.path.exists(os.path.join(d, name)), "%s/%s missing" % (board, name)
    with open(os.path.join(d, "main.py")) as f:
        src = f.read()
    compile(src, "main.py", "exec")
    assert "certpin.connect(" in src and "PinError" in src
    if board != "UNIX":
        with open(os.path.join(d, "manifest.py")) as f:
            assert "firmware_lib/manifest.py" in f.read()


@pytest.mark.parametrize("board", BOARDS)
def test_board_boot_py_installs_the_pins(board):
    # "one line in boot.py pins the whole application" (docs/install.md)
    with open(os.path.join(ROOT, "boards", board, "boot.py")) as f:
        src = f.read()
    compile(src, "boot.py", "exec")
    code = [l for l in src.splitlines() if l.strip() and not l.startswith("#")]
    assert code == ["import certpin", "certpin.install()"], code


def test_mip_install_from_a_checkout_gives_an_importable_library(vboard, tmp_path):
    b = vboard()
    p = b.mpremote("mip", "install", os.path.join(LIB, "package.json"), timeout=120)
    assert "Installing" in p.stdout
    assert sorted(os.listdir(os.path.join(b.root, "lib", "certpin"))) == modules()
    out = b.run("import certpin\nprint('VERSION', certpin.__version__)\n", tmp_path)
    assert "VERSION " + library_version() in out
