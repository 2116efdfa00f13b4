"""Stable file names, atomic writes, the parameter-keyed result cache and manifests.

* :func:`atomic_write` -- every file aine writes appears whole or not at all
  (write to a temporary file in the same folder, then ``os.replace``).
* :class:`ResultCache` -- anything that trains or attributes is stored under a
  hash of its parameters, so a rerun is fast and a killed run resumes.
* :class:`RunContext` -- a notebook's handle for saving figures and tables;
  each save records in ``figures/manifest.json`` / ``tables/manifest.json``
  which notebook, config, parameters, git commit, package versions and device
  made the file, and how long the run had taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from aine_lib.config import StudyConfig, config_to_dict
from aine_lib.repro import describe_device, get_device
from aine_lib.timing import record_hit, timed_compute

CACHE_FORMAT_VERSION = 1
TRACKED_PACKAGES = (
    "torch", "transformers", "captum", "numpy", "pandas", "scipy", "scikit-learn",
    "matplotlib", "seaborn", "papermill", "tokenizers",
)


# ----- atomic writes ---------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----- canonical parameters and keys --------------------------------------

def canonical(obj: Any) -> Any:
    """A JSON-able, order-stable view of parameters (dataclasses, paths, numpy scalars)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return canonical(config_to_dict(obj))
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return canonical(obj.item())
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return repr(obj)
        return obj
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise TypeError(
        f"cannot use a {type(obj).__name__} as a cache parameter; pass plain numbers, "
        "strings, lists, dicts or config dataclasses"
    )


def params_key(params: Any) -> str:
    """A short stable hash of parameters: same parameters, same key, on every machine."""
    blob = json.dumps({"v": CACHE_FORMAT_VERSION, "p": canonical(params)},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ----- result cache -------------------------------------------------------

def _pickle_dump(obj: Any, path: Path) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_load(path: Path) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)


class ResultCache:
    """Results stored under ``root/namespace/<params_key>.<suffix>``.

    Each entry has a ``.json`` sidecar with its parameters and the SHA-256 of
    the payload; an entry whose payload does not match is recomputed (with a
    warning), never returned.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def entry(self, namespace: str, params: Any, suffix: str = "pkl") -> Path:
        if not namespace or "/" in namespace or namespace.startswith("."):
            raise ValueError(f"cache namespace must be a plain name such as 'models', got {namespace!r}")
        return self.root / namespace / f"{params_key(params)}.{suffix}"

    def partial(self, namespace: str, params: Any, suffix: str = "pkl") -> Path:
        """Where a long computation of this entry may keep its resumable state (``<entry>.partial``).

        Never returned by :meth:`get_or_compute`; the computation that wrote it deletes it once the entry
        is stored (see :func:`aine_lib.models.seq2seq_training.train_seq2seq`'s ``checkpoint``).
        """
        entry = self.entry(namespace, params, suffix)
        return entry.with_name(entry.name + ".partial")

    def _sidecar(self, entry: Path) -> Path:
        return entry.with_suffix(entry.suffix + ".json")

    def has(self, namespace: str, params: Any, suffix: str = "pkl") -> bool:
        entry = self.entry(namespace, params, suffix)
        return entry.exists() and self._sidecar(entry).exists() and self._valid(entry)

    def _valid(self, entry: Path) -> bool:
        try:
            meta = json.loads(self._sidecar(entry).read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return meta.get("sha256") == sha256_file(entry)

    def get_or_compute(
        self,
        namespace: str,
        params: Any,
        compute: Callable[[], Any],
        *,
        save: Callable[[Any, Path], None] = _pickle_dump,
        load: Callable[[Path], Any] = _pickle_load,
        suffix: str = "pkl",
    ) -> Any:
        entry = self.entry(namespace, params, suffix)
        started = time.perf_counter()
        if entry.exists() and self._valid(entry):
            result = load(entry)
            record_hit(namespace, time.perf_counter() - started)
            return result
        # Two processes sharing the cache (two notebook chains, the scaling executors' workers) that need the
        # same missing entry: the first computes it under an advisory lock (root/.locks/<namespace>/<key>), the
        # others wait and then read its result instead of computing it again.
        with _locked(self.root / ".locks" / namespace / entry.name,
                     waiting=f"waiting for cache entry {entry} (another process is computing it)"):
            if entry.exists():
                if self._valid(entry):
                    result = load(entry)
                    record_hit(namespace, time.perf_counter() - started)
                    return result
                warnings.warn(f"cache entry {entry} does not match its checksum; recomputing it", stacklevel=2)
            with timed_compute(namespace):
                result = compute()
            self.put(namespace, params, result, save=save, suffix=suffix)
        return result

    def put(self, namespace: str, params: Any, result: Any, *,
            save: Callable[[Any, Path], None] = _pickle_dump, suffix: str = "pkl") -> Path:
        entry = self.entry(namespace, params, suffix)
        with atomic_write(entry) as tmp:
            save(result, tmp)
            digest = sha256_file(tmp)
            # Sidecar first (atomic): a payload without a matching sidecar is never trusted.
            meta = {"namespace": namespace, "params": canonical(params), "sha256": digest}
            atomic_write_bytes(self._sidecar(entry), json.dumps(meta, indent=1, sort_keys=True).encode())
        return entry


# ----- provenance ---------------------------------------------------------

def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(root: Path) -> str:
    """The commit of the project checkout (``+dirty`` when source files differ), or 'unknown'."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "aine_lib", "notebooks", "configs"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if status else "")


@contextlib.contextmanager
def _locked(path: Path, waiting: str | None = None) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` + ``.lock`` (POSIX; a no-op where ``fcntl`` is missing).

    Two notebook chains run at once (say, 08-10 and 11-13 in two shells) both
    read-modify-write the same manifest; without the lock one save can drop
    the other's entry. :meth:`ResultCache.get_or_compute` holds it while it
    computes a missing entry, so a second process waits for that result;
    ``waiting``, if given, is printed to stderr when the lock is already held.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _update_manifest(manifest: Path, key: str, record: dict) -> None:
    with _locked(manifest):
        entries = {}
        if manifest.exists():
            try:
                entries = json.loads(manifest.read_text())
            except json.JSONDecodeError as exc:
                raise RuntimeError(
                    f"{manifest} is not valid JSON ({exc}); restore it from git (`git checkout -- {manifest}`) "
                    "or delete it to start a new one"
                ) from exc
        entries[key] = record
        atomic_write_bytes(manifest, (json.dumps(entries, indent=1, sort_keys=True) + "\n").encode())


class RunContext:
    """A notebook's handle for writing outputs with provenance.

    >>> run = RunContext(cfg, notebook="00_data", parameters={"k": 5})
    >>> run.save_table(df, "data_summary")      # tables/data_summary.csv
    >>> run.save_figure(fig, "data_lengths")    # figures/data_lengths.png
    """

    def __init__(self, cfg: StudyConfig, notebook: str, parameters: Mapping[str, Any] | None = None,
                 device: str | None = None):
        self.cfg = cfg
        self.notebook = notebook
        self.parameters = canonical(dict(parameters or {}))
        self.device = device or describe_device(get_device(cfg.device))
        self.started = time.perf_counter()
        self.commit = git_commit(cfg.root_path)
        self.cache = ResultCache(cfg.cache_path)

    def _record(self, path: Path) -> dict:
        try:
            config_path = str(Path(self.cfg.source).relative_to(self.cfg.root_path))
        except ValueError:
            config_path = self.cfg.source
        return {
            "notebook": self.notebook if self.notebook.endswith(".py") else f"notebooks/{self.notebook}.ipynb",
            "config": config_path,
            "config_name": self.cfg.name,
            "parameters": self.parameters,
            "git_commit": self.commit,
            "packages": package_versions(),
            "device": self.device,
            "runtime_s": round(time.perf_counter() - self.started, 1),
            "sha256": sha256_file(path),
        }

    def save_table(self, df, name: str, float_format: str = "%.6g") -> Path:
        """Write ``tables/<name>.csv`` with fixed float formatting (same numbers, same bytes)."""
        _check_name(name)
        path = self.cfg.tables_dir / f"{name}.csv"
        buf = io.StringIO()
        df.to_csv(buf, index=False, float_format=float_format, lineterminator="\n")
        atomic_write_bytes(path, buf.getvalue().encode())
        _update_manifest(self.cfg.tables_dir / "manifest.json", path.name, self._record(path))
        return path

    def save_figure(self, fig, name: str, dpi: int = 120) -> Path:
        """Write ``figures/<name>.png`` with metadata stripped, so a rebuild gives the same bytes."""
        _check_name(name)
        path = self.cfg.figures_dir / f"{name}.png"
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
        _update_manifest(self.cfg.figures_dir / "manifest.json", path.name, self._record(path))
        return path


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"output names are letters, digits, '_' and '-' only (no suffix), got {name!r}")


# ----- committing paper outputs ---------------------------------------------------------------

def stage_outputs(folders: list[Path], notebooks: list[str], repo: Path) -> list[Path]:
    """``git add`` the outputs of ``notebooks`` (names such as ``08_attention_maps``) in ``folders``.

    Each folder's ``manifest.json`` is staged as the manifest already in the index (``HEAD``'s unless an
    earlier ``stage`` changed it) plus these notebooks' entries from the working manifest, so outputs of
    other notebooks still being written by a running chain stay out of the commit. The working manifest
    itself is only read (under its lock), never rewritten. Every file is read once: the bytes whose SHA-256
    was checked are the bytes staged. All checks run before anything is staged, so a refusal stages
    nothing. Refuses, naming the fix, a notebook without entries, an entry whose file is missing or does not
    match its SHA-256, and an entry produced from a dirty checkout (``git_commit`` ending in ``+dirty``).
    Returns the staged paths.
    """
    def git(*args: str, stdin: bytes | None = None) -> bytes:
        return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=True).stdout

    def in_index(rel: str) -> dict:
        spec = f":./{rel}"
        if subprocess.run(["git", "cat-file", "-e", spec], cwd=repo, capture_output=True).returncode != 0:
            return {}          # not tracked yet
        return json.loads(git("show", spec))

    plan: list[tuple[str, bytes]] = []     # (repo-relative path, exact bytes to stage)
    staged: list[Path] = []
    seen: set[str] = set()
    for folder in folders:
        manifest = folder / "manifest.json"
        if not manifest.exists():
            continue
        with _locked(manifest):
            working = json.loads(manifest.read_text())
        rel = manifest.resolve().relative_to(repo.resolve()).as_posix()
        base = in_index(rel)
        files = []
        for key, record in sorted(working.items()):
            name = Path(record.get("notebook", "")).stem
            if name not in notebooks:
                continue
            path = folder / key
            data = path.read_bytes() if path.exists() else None
            if data is None or hashlib.sha256(data).hexdigest() != record.get("sha256"):
                raise ValueError(f"{path} is missing or does not match its manifest entry; rerun "
                                 f"`aine run --only {name}` before staging it")
            if str(record.get("git_commit", "")).endswith("+dirty"):
                raise ValueError(f"{path} was produced from uncommitted code ({record['git_commit']}); commit "
                                 f"aine_lib/, notebooks/ and configs/, rerun `aine run --only {name}`, then stage")
            base[key] = record
            files.append((path.resolve().relative_to(repo.resolve()).as_posix(), data))
            staged.append(path)
            seen.add(name)
        if files:
            plan += [(rel, (json.dumps(base, indent=1, sort_keys=True) + "\n").encode()), *files]
            staged.append(manifest)
    missing = sorted(set(notebooks) - seen)
    if missing:
        raise ValueError(f"no outputs of {missing} in the manifests of {[str(f) for f in folders]}; run "
                         f"`aine run --only {missing[0]}` first (or check the notebook name)")
    for rel, data in plan:
        blob = git("hash-object", "-w", "--stdin", stdin=data).decode().strip()
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}")
    return staged
