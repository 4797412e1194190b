"""`dataengine publish`: upload a verified release to the Hugging Face Hub as a dataset repo.

The upload is `HfApi.upload_large_folder` (resumable: it keeps its state inside the folder, and a
rerun continues). The token comes from `HF_TOKEN` or the `huggingface-cli login` store and is only
ever handed to huggingface_hub: never printed, logged, or written into the release. A release in an
object store (`s3://...`) is first copied into a local temporary folder (`local_copy`), which the
upload reads and the refreshed card is written to; the store's objects are left as they are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dataengine.io.store import Store, StoreError, is_store_url, redact
from dataengine.release.verify import verify_release

IGNORED = (".work", ".cache", ".validate")  # build state, caches, validate checkpoints


class PublishError(RuntimeError):
    """The release cannot be published; the message says why."""


@dataclass(frozen=True)
class PublishPlan:
    repo_id: str
    files: list[tuple[str, int]]  # (path in the repo, bytes)
    card: str

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


@contextmanager
def local_copy(release: str | Path) -> Iterator[Path]:
    """The release folder; a release in an object store is downloaded into a temporary folder for the
    duration (build state, caches and validate checkpoints left out)."""
    if not is_store_url(release):
        yield Path(release)
        return
    url = str(release).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="dataengine-publish-") as folder:
        try:
            store = Store(url)
            files = [name for name in store.files() if name.split("/")[0] not in IGNORED]
            if "manifest.json" not in files:
                raise PublishError(f"{redact(url)} is not a dataengine release (no manifest.json); build one there with `dataengine build`")
            store.download(files, Path(folder))
        except StoreError as exc:
            raise PublishError(str(exc)) from None
        except OSError as exc:
            raise PublishError(
                f"cannot read {redact(url)} ({type(exc).__name__}: {exc}); check the URL and the store's credentials"
            ) from None
        yield Path(folder)


def plan_upload(release: str | Path, repo_id: str) -> PublishPlan:
    """Every file the upload sends, after the release (a folder or a store URL) passes `verify`."""
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"--repo-id {repo_id!r}: write it as <user or org>/<name>")
    problems = verify_release(release)
    if problems:
        listed = "\n  ".join(str(p) for p in problems[:20])
        raise PublishError(f"{redact(str(release))} fails verify, so it is not published:\n  {listed}")
    if is_store_url(release):
        try:
            store = Store(str(release))
            stored = sorted((name, size) for name, size in store.files().items() if name.split("/")[0] not in IGNORED)
            return PublishPlan(repo_id, stored, store.read_bytes("README.md").decode("utf-8"))
        except OSError as exc:
            raise PublishError(f"cannot read {redact(str(release))} ({exc}); check the URL and the store's credentials") from None
    release = Path(release)
    files = sorted(
        (path.relative_to(release).as_posix(), path.stat().st_size)
        for path in release.rglob("*")
        if path.is_file() and not any(part in IGNORED for part in path.relative_to(release).parts)
    )
    return PublishPlan(repo_id, files, (release / "README.md").read_text())


def publish(release: str | Path, repo_id: str, revision: str | None = None, private: bool = False) -> PublishPlan:
    """Create the dataset repo if needed and upload the release (resumable; a release in a store is
    copied to a local folder first, see `local_copy`)."""
    from huggingface_hub import HfApi

    with local_copy(release) as folder:
        plan = plan_upload(folder, repo_id)
        api = HfApi()  # token: HF_TOKEN or the login store, resolved inside huggingface_hub
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        api.upload_large_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            revision=revision,
            private=private,
            ignore_patterns=[f"{name}/**" for name in IGNORED],
        )
    return plan
