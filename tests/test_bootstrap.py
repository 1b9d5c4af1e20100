"""A notebook opened alone (Colab, or copied into an empty folder): the setup block clones the course, installs
only what the runtime lacks, or stops with one message that says what to do. Also `python -m utils.bootstrap`.

The Colab runs are simulated offline: the course is committed to a local bare repository that COURSE_REPO
points at (file://), and a copy of 00_start_here.ipynb is executed alone in an empty folder with nbclient.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import one_message
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from utils import bootstrap
from utils.bootstrap import REPO_URL, SETUP_BLOCK, github_repo, install_missing, missing_requirements

ROOT = Path(__file__).resolve().parent.parent

REQUIREMENTS = """\
# The course's runtime environment (Python 3.11).
torch==2.14.1
torchvision==0.29.1

numpy==2.4.6
tensorboardX==2.6.5   # only the logger needs it
tensorboard==2.21.0
Pillow==13.0.0
jupyterlab==4.6.6
ipykernel==7.4.0
"""

# What Colab has: its own CUDA torch, other versions of most packages, no tensorboardX, no jupyterlab.
COLAB = {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121", "numpy": "1.26.4", "pillow": "11.1.0",
         "ipykernel": "5.5.6"}


def colab(name: str) -> str | None:
    return COLAB.get(name.lower())


# ----------------------------------------------------------------------------- missing_requirements


def test_missing_requirements_asks_only_for_packages_not_installed_at_all():
    assert missing_requirements(REQUIREMENTS, installed=colab) == ["tensorboardX==2.6.5"]


def test_jupyterlab_ipykernel_and_tensorboard_are_never_asked_for():
    assert missing_requirements(REQUIREMENTS, installed=lambda name: None) == [
        "torch==2.14.1", "torchvision==0.29.1", "numpy==2.4.6", "tensorboardX==2.6.5", "Pillow==13.0.0"]


def test_torch_of_any_version_keeps_torch_and_torchvision_out_of_the_list():
    only_torch = lambda name: "2.5.1+cu121" if name == "torch" else None
    assert not {"torch==2.14.1", "torchvision==0.29.1"} & set(missing_requirements(REQUIREMENTS, only_torch))
    only_vision = lambda name: "0.20.1" if name == "torchvision" else None
    assert not {"torch==2.14.1", "torchvision==0.29.1"} & set(missing_requirements(REQUIREMENTS, only_vision))


def test_comments_blank_lines_and_options_are_ignored():
    text = "# a comment\n\n   \n-r requirements-dev.txt\n--index-url https://example.org\ntqdm==4.70.1  # bars\n"
    asked = []
    assert missing_requirements(text, installed=lambda name: asked.append(name)) == ["tqdm==4.70.1"]
    assert asked == ["tqdm"]


def test_missing_requirements_reads_what_this_python_has_installed():
    text = "pytest==0.0.1\nno-such-package-of-the-course==1.0\n"
    assert missing_requirements(text) == ["no-such-package-of-the-course==1.0"]


# ----------------------------------------------------------------------------- install_missing


def fake_course(tmp_path: Path) -> Path:
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    return tmp_path


def test_install_missing_pip_installs_exactly_the_missing_packages(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bootstrap, "_installed_version", colab)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert install_missing(fake_course(tmp_path)) == ["tensorboardX==2.6.5"]
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "tensorboardX==2.6.5"]]
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "tensorboardX==2.6.5" in out


def test_install_missing_runs_nothing_when_all_is_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bootstrap, "_installed_version", lambda name: "1.0")
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: pytest.fail(f"ran {a}"))
    assert install_missing(fake_course(tmp_path)) == []
    assert capsys.readouterr().out == ""


def test_a_failing_pip_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap, "_installed_version", colab)
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version that satisfies the requirement\n"
                                                    "ERROR: No matching distribution found for tensorboardX==2.6.5\n")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: failed)
    with pytest.raises(RuntimeError) as err:
        install_missing(fake_course(tmp_path))
    message = one_message(err.value)
    assert "tensorboardX==2.6.5" in message and "No matching distribution" in message
    assert "pip install --quiet tensorboardX==2.6.5" in message, "says the command to run by hand"


# ----------------------------------------------------------------------------- the setup block


def test_setup_block_is_plain_python_that_names_the_repository_once():
    compile(SETUP_BLOCK, "setup block", "exec")
    assert SETUP_BLOCK.count(REPO_URL) == 1
    assert not [line for line in SETUP_BLOCK.splitlines() if line.lstrip().startswith(("!", "%"))], "no magics"
    lines = SETUP_BLOCK.splitlines()
    assert lines[0].startswith("# Setup, the same in every notebook") and lines[-1] == "device = utils.setup(seed=0)"
    assert "COURSE_REPO" in SETUP_BLOCK


def test_github_repo_reads_owner_and_name():
    assert github_repo("https://github.com/amazing-gans/amazing-gans.git") == "amazing-gans/amazing-gans"
    assert github_repo("https://github.com/me/my.course") == "me/my.course"
    assert github_repo("git@github.com:me/course.git") == "me/course"
    assert github_repo("https://gitlab.com/me/course.git") is None
    assert github_repo() is not None, "REPO_URL is on GitHub, so the Colab badges can open the notebooks"


OLD_BLOCK = '''\
# Setup, the same in every notebook: find the course (or fetch it on Colab), pick the device, fix the seed.
import sys
from pathlib import Path

COURSE = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "utils" / "__init__.py").is_file()), None)
if COURSE is None:  # opened without a clone, e.g. on Colab: fetch the course code first
    !git clone --quiet --depth 1 https://github.com/someone/old-name.git
    %pip install --quiet tensorboardX
    COURSE = Path("amazing-gans").resolve()
sys.path.insert(0, str(COURSE))

import utils

device = utils.setup(seed=0)'''


def test_publish_rewrites_setup_blocks_and_colab_links_and_nothing_else(tmp_path):
    badge = "https://colab.research.google.com/github/someone/old-name/blob/main/notebooks/00_x.ipynb"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"# 00 · X\n\n[![Open In Colab](badge.svg)]({badge})"),
        nbformat.v4.new_code_cell(f"import time\n\n{OLD_BLOCK}\nprint('ü')"),
        nbformat.v4.new_code_cell("x = 1"),
    ])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text=f"{badge}\n{OLD_BLOCK}\n")]
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / "notebooks" / "00_x.ipynb"
    nbformat.write(nb, path)
    path.chmod(0o640)
    (tmp_path / "README.md").write_text(f"Colab links: `{badge.replace('00_x', '<notebook>')}`.\n")

    assert bootstrap.publish(tmp_path, check=True) == 1
    assert bootstrap.publish(tmp_path) == 0
    assert bootstrap.publish(tmp_path, check=True) == 0

    text = path.read_text(encoding="utf-8")
    new = json.loads(text)
    assert text == json.dumps(new, indent=1, ensure_ascii=False) + "\n" and "ü" in text, "nbformat's formatting"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert "".join(new["cells"][1]["source"]) == f"import time\n\n{SETUP_BLOCK}\nprint('ü')"
    assert f"github/{github_repo()}/blob/main/notebooks/00_x.ipynb" in "".join(new["cells"][0]["source"])
    assert nbformat.reads(text, as_version=4).cells[1].outputs == nb.cells[1].outputs, "outputs are left alone"
    assert "".join(new["cells"][2]["source"]) == "x = 1"
    assert f"github/{github_repo()}/blob/main/notebooks/<notebook>.ipynb" in (tmp_path / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["00_x.ipynb", "README.md", "notebooks"], "no temp files"


# ----------------------------------------------------------------------------- Colab, simulated offline


@pytest.fixture(scope="module")
def course_remote(tmp_path_factory) -> Path:
    """A bare git repository holding the course as it is in this working tree (committed or not)."""
    where = tmp_path_factory.mktemp("remote")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    source = where / "course"
    for name in listed:
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-c",
           "init.defaultBranch=main"]
    for args in (["init", "--quiet"], ["add", "-A"], ["commit", "--quiet", "-m", "the course"]):
        subprocess.run([*git, *args], cwd=source, check=True, capture_output=True)
    subprocess.run(["git", "clone", "--quiet", "--bare", str(source), str(where / "amazing-gans.git")], check=True,
                   capture_output=True)
    return where / "amazing-gans.git"


def copy_alone(folder: Path) -> nbformat.NotebookNode:
    """A copy of 00_start_here.ipynb, with this SETUP_BLOCK, alone in the new folder `folder` (as Colab opens it)."""
    folder.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    assert bootstrap.rewrite_notebook(nb), "00_start_here has the setup block"
    nb.cells.append(nbformat.v4.new_code_cell("print('utils from', utils.__file__)"))
    for cell in nb.cells:  # the stored outputs would hide which cells this run reached
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, folder / "00_start_here.ipynb")
    return nbformat.read(folder / "00_start_here.ipynb", as_version=4)


def execute(nb: nbformat.NotebookNode, folder: Path, course_repo: str) -> None:
    """Run `nb` top to bottom in a fresh kernel whose working folder is `folder`, in the smoke profile, offline."""
    saved = dict(os.environ)
    os.environ.update({"COURSE_PROFILE": "smoke", "COURSE_OFFLINE": "1", "MPLBACKEND": "agg",
                       "COURSE_REPO": course_repo})
    os.environ.pop("PYTHONPATH", None)  # the kernel must find the course by itself
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def outputs_of(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_a_notebook_opened_alone_clones_the_course_and_runs(tmp_path, course_remote):
    folder, url = tmp_path / "colab", course_remote.as_uri()
    nb = copy_alone(folder)
    execute(nb, folder, url)
    assert not [o for o in outputs_of(nb) if o.output_type == "error"]
    assert (folder / "amazing-gans" / "utils" / "__init__.py").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["00_start_here.ipynb", "amazing-gans"]
    text = "".join(o.get("text", "") for o in outputs_of(nb))
    printed = re.search(rf"Cloned the course from {re.escape(url)} at commit (\w+)\n", text)
    assert printed, f"the setup cell names the URL and the commit it cloned: {text[:500]}"
    head = subprocess.run(["git", "-C", str(course_remote), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert len(printed[1]) >= 7 and head.startswith(printed[1])
    assert f"utils from {folder / 'amazing-gans' / 'utils' / '__init__.py'}" in text, "imports the clone's utils"
    assert "Installing" not in text, "this Python has every package, so nothing is installed"


def test_a_notebook_opened_alone_with_an_unreachable_course_says_what_to_do(tmp_path):
    folder, url = tmp_path / "colab", "file:///nonexistent/amazing-gans-test/amazing-gans.git"
    nb = copy_alone(folder)
    with pytest.raises(CellExecutionError) as err:
        execute(nb, folder, url)
    assert err.value.ename == "RuntimeError"
    assert url in err.value.evalue and "COURSE_REPO" in err.value.evalue
    assert "does not appear to be a git repository" in err.value.evalue, "git's own reason"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [o.output_type for o in code[0].outputs] == ["error"], "the first code cell stops, with one error"
    assert not any(c.outputs or c.execution_count for c in code[1:]), "no later cell runs"
    assert "ModuleNotFoundError" not in str(err.value) + json.dumps(outputs_of(nb))
    assert sorted(p.name for p in folder.iterdir()) == ["00_start_here.ipynb"], "no half clone left behind"


def test_the_notebooks_and_readme_carry_repo_url():
    check = subprocess.run([sys.executable, "-m", "utils.bootstrap", "--check"], cwd=ROOT, capture_output=True,
                           text=True)
    assert check.returncode == 0, f"run `python -m utils.bootstrap`:\n{check.stdout}{check.stderr}"
