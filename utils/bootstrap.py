"""How a notebook finds the course when it is opened alone (Colab, or a notebook copied into an empty folder).

REPO_URL is the one place in the code that names the course's repository; $COURSE_REPO overrides it when a
notebook runs. SETUP_BLOCK is the setup code every notebook's first code cell ends with: it finds the course
folder, or clones the course and installs only the packages the runtime lacks (never Colab's own torch).

To publish the course under another URL, edit REPO_URL and run `python -m utils.bootstrap`: it rewrites the
setup block and the Colab badge links of every notebook and of README.md (`--check` only reports).

Standard library only, so the setup block can load this file before torch or anything else is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_URL = "https://github.com/amazing-gans/amazing-gans.git"

CLONE_DIR = "amazing-gans"  # the folder, beside the notebook, that a notebook opened alone clones the course into

SETUP_BLOCK = f'''\
# Setup, the same in every notebook: find the course (or clone it, e.g. on Colab), pick the device, fix the seed.
import os
import runpy
import subprocess
import sys
from pathlib import Path

COURSE = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "utils" / "__init__.py").is_file()), None)
if COURSE is None:  # opened alone, e.g. on Colab: use the clone made earlier, or clone the course now
    URL = os.environ.get("COURSE_REPO", {json.dumps(REPO_URL)})
    COURSE = Path.cwd() / "{CLONE_DIR}"
    if not (COURSE / "utils" / "__init__.py").is_file():
        try:
            git = subprocess.run(["git", "clone", "--quiet", "--depth", "1", URL, "{CLONE_DIR}"], capture_output=True,
                                 text=True, env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
            error = git.returncode and (git.stderr.strip().splitlines() or ["git gave no message"])[0]
        except OSError as e:  # no git on this machine
            error = f"git could not run ({{e}})"
        if error:
            raise RuntimeError(
                f"Could not clone the course from {{URL}}: {{error}}\\nClone or upload the course by hand and open this "
                "notebook from its notebooks/ folder, or set COURSE_REPO to a copy you can reach (a fork, or a "
                "file:// path), e.g. with `%env COURSE_REPO=...` in a cell above this one.")
        commit = subprocess.run(["git", "-C", "{CLONE_DIR}", "rev-parse", "--short", "HEAD"], capture_output=True)
        print(f"Cloned the course from {{URL}} at commit {{commit.stdout.decode().strip()}}")
    runpy.run_path(str(COURSE / "utils" / "bootstrap.py"))["install_missing"](COURSE)  # only what this runtime lacks
sys.path.insert(0, str(COURSE))

import utils

device = utils.setup(seed=0)'''

# Never installed by a notebook: the runtime that runs the notebook already has a kernel, and TensorBoard is a
# viewer started beside the notebooks, not something a notebook imports.
NEVER_INSTALL = {"jupyterlab", "ipykernel", "tensorboard"}
# Installed only when none of them is: Colab's torch is a CUDA build that a pip install would replace.
TORCH_FAMILY = {"torch", "torchvision"}

# The old block and the new one both start and end with these lines.
_BLOCK = re.compile(r"^# Setup, the same in every notebook.*?^device = utils\.setup\(seed=0\)$", re.S | re.M)
_COLAB = re.compile(r"(https://colab\.research\.google\.com/github/)[\w.-]+/[\w.-]+(/blob/main/notebooks/)")
_GITHUB = re.compile(r"^(?:https?://|ssh://git@|git@)github\.com[/:]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


def github_repo(url: str = REPO_URL) -> str | None:
    """'owner/name' of a GitHub repository URL (what Colab badges link to), or None for any other URL."""
    match = _GITHUB.match(url.strip())
    return f"{match[1]}/{match[2]}" if match else None


# ----------------------------------------------------------------------------- installing what is missing


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(requirements_text: str,
                         installed: Callable[[str], str | None] | None = None) -> list[str]:
    """The lines of a requirements.txt (e.g. 'tqdm==4.70.1') whose package is not installed in any version.

    A package installed in another version counts as present: the runtime keeps what it has. jupyterlab and
    ipykernel are never asked for, and torch and torchvision are asked for only when neither is installed.
    `installed(name)` gives a package's installed version or None (default: importlib.metadata.version).
    """
    installed = installed or _installed_version
    wanted = []
    for raw in requirements_text.splitlines():
        line = re.split(r"\s#", raw)[0].strip()
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if not match or line.startswith("#"):
            continue  # a blank line, a comment, or an option such as -r or --index-url
        wanted.append((_canonical(match[0]), line))
    have = {name: installed(name) is not None for name, _ in wanted}
    torch_here = any(have[name] for name in TORCH_FAMILY & set(have))
    return [line for name, line in wanted
            if not have[name] and name not in NEVER_INSTALL and not (name in TORCH_FAMILY and torch_here)]


def install_missing(course_dir: str | os.PathLike) -> list[str]:
    """pip-install the packages of course_dir/requirements.txt that this Python lacks; return their lines."""
    missing = missing_requirements((Path(course_dir) / "requirements.txt").read_text(encoding="utf-8"))
    if not missing:
        return []
    command = [sys.executable, "-m", "pip", "install", "--quiet", *missing]
    print(f"Installing what this runtime lacks: {' '.join(missing)}", flush=True)
    pip = subprocess.run(command, capture_output=True, text=True)
    if pip.returncode:
        why = (pip.stderr.strip() or pip.stdout.strip() or f"exit status {pip.returncode}").splitlines()[-1]
        raise RuntimeError(
            f"pip could not install {', '.join(missing)}: {why}. Install them by hand "
            f"(`{' '.join(command[2:])}`, or `%pip install {' '.join(missing)}` in a notebook cell) and run the "
            "setup cell again."
        )
    importlib.invalidate_caches()  # so this running Python imports what was just installed
    return missing


# ----------------------------------------------------------------------------- rewriting the notebooks


def _rewrite_text(text: str, setup: bool) -> str:
    slug = github_repo()
    if slug:
        text = _COLAB.sub(lambda m: f"{m[1]}{slug}{m[2]}", text)
    return _BLOCK.sub(lambda m: SETUP_BLOCK, text) if setup else text


def rewrite_notebook(nb: dict) -> bool:
    """Put SETUP_BLOCK and this REPO_URL's Colab links into a notebook (as parsed JSON), in place.

    Only cell sources change, never outputs or metadata. Returns whether the notebook holds a setup block.
    """
    found = False
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        code = cell.get("cell_type") == "code"
        found = found or bool(code and _BLOCK.search(text))
        new = _rewrite_text(text, setup=code)
        if new != text:
            cell["source"] = new.splitlines(keepends=True) if isinstance(source, list) else new
    return found


def notebook_json(nb: dict) -> str:
    """A notebook's file text as nbformat writes it: one-space indent, UTF-8 as is, a final newline."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(root: str | os.PathLike, check: bool = False) -> int:
    """Rewrite (or, with check, only compare) every notebooks/NN_*.ipynb and README.md; return the exit status."""
    root = Path(root)
    if github_repo() is None:
        print(f"REPO_URL {REPO_URL} is not a GitHub repository: the Colab links are left as they are "
              "(Colab opens notebooks from GitHub only).", file=sys.stderr)
    status = 0
    for path in [*sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")), root / "README.md"]:
        if not path.is_file():
            continue
        old = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            nb = json.loads(old)
            if not rewrite_notebook(nb):
                print(f"{path.relative_to(root)}: no setup block found (the lines from '# Setup, the same in every "
                      "notebook' to 'device = utils.setup(seed=0)')", file=sys.stderr)
                status = 1
            new = notebook_json(nb)
        else:
            new = _rewrite_text(old, setup=False)
        if new == old:
            continue
        if check:
            print(f"{path.relative_to(root)} differs from REPO_URL's setup block or Colab links")
            status = 1
        else:
            _write_atomically(path, new)
            print(f"rewrote {path.relative_to(root)}")
    if check and status:
        print("Run `python -m utils.bootstrap` to rewrite them.")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.bootstrap",
        description=f"Rewrite every notebook's setup block and the Colab links for REPO_URL ({REPO_URL}).")
    parser.add_argument("--check", action="store_true", help="only report what differs (exit status 1 if anything)")
    args = parser.parse_args(argv)
    return publish(Path(__file__).resolve().parent.parent, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
