"""`dataengine publish`: upload a verified release to the Hugging Face Hub as a dataset repo.

The upload is `HfApi.upload_large_folder` (resumable: it keeps its state inside the folder, and a
rerun continues). The token comes from `HF_TOKEN` or the `huggingface-cli login` store and is only
ever handed to huggingface_hub: never printed, logged, or written into the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def plan_upload(release: str | Path, repo_id: str) -> PublishPlan:
    """Every file the upload sends, after the release passes `verify`."""
    release = Path(release)
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"--repo-id {repo_id!r}: write it as <user or org>/<name>")
    problems = verify_release(release)
    if problems:
        listed = "\n  ".join(str(p) for p in problems[:20])
        raise PublishError(f"{release} fails verify, so it is not published:\n  {listed}")
    files = sorted(
        (path.relative_to(release).as_posix(), path.stat().st_size)
        for path in release.rglob("*")
        if path.is_file() and not any(part in IGNORED for part in path.relative_to(release).parts)
    )
    return PublishPlan(repo_id, files, (release / "README.md").read_text())


def publish(release: str | Path, repo_id: str, revision: str | None = None, private: bool = False) -> PublishPlan:
    """Create the dataset repo if needed and upload the release (resumable)."""
    from huggingface_hub import HfApi

    plan = plan_upload(release, repo_id)
    api = HfApi()  # token: HF_TOKEN or the login store, resolved inside huggingface_hub
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    api.upload_large_folder(
        repo_id=repo_id,
        folder_path=str(release),
        repo_type="dataset",
        revision=revision,
        private=private,
        ignore_patterns=[f"{name}/**" for name in IGNORED],
    )
    return plan
