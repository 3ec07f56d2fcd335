"""Push a trained router folder to the Hugging Face Hub (the router only, never resume checkpoints).

    routertrain push checkpoints/<run> --repo-id ORG/NAME [--revision BRANCH] [--private]

The token comes from ``HF_TOKEN`` or the saved HF login and is never printed or written anywhere.
Offline (``HF_HUB_OFFLINE=1`` or no network) the push fails fast with one line, and the local
folder stays as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routertrain.hub.card import render
from routertrain.provenance import WriteFailed, atomic_write_text, writing
from routertrain.hub.router import router_folder as find_router_folder


class PushError(RuntimeError):
    """The router could not be pushed; the message says why and what to do."""


def router_folder(path: str | Path) -> Path:
    """Accept a run folder (with ``router/``) or a router folder itself."""
    try:
        return find_router_folder(path)
    except OSError as err:  # no router there, or a run that did not finish
        raise PushError(str(err)) from None


def check_repo_id(repo_id: str) -> None:
    """Refuse, before any work, a ``repo_id`` that is not of the Hub's form (ORG/NAME)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushError(f"--repo-id {repo_id!r} is not a Hub repo id ({str(err).split(':')[0]}); give ORG/NAME, e.g. my-org/my-router") from None


def push(path: str | Path, repo_id: str, revision: str | None = None, private: bool = False, token: str | None = None) -> str:
    """Upload the router folder to ``repo_id`` (branch ``revision``); returns the commit URL."""
    from huggingface_hub import HfApi, constants

    check_repo_id(repo_id)
    folder = router_folder(path)
    if constants.HF_HUB_OFFLINE:
        raise PushError(f"cannot push to the Hub while offline (HF_HUB_OFFLINE=1); the router stays in {folder}; push it later with routertrain push {folder} --repo-id {repo_id}")
    try:
        with writing(folder / "README.md", "free space or fix the folder's permissions, then push again"):
            atomic_write_text(folder / "README.md", render(folder, repo_id=repo_id))
    except WriteFailed as err:
        raise PushError(str(err)) from None
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            commit_message=f"Upload router ({len(list(folder.iterdir()))} files) with routertrain",
        )
    except Exception as err:  # network, auth and permission errors come in many types
        reason = type(err).__name__
        raise PushError(f"push to {repo_id} failed ({reason}); the router stays in {folder}; check the network and your token (HF_TOKEN or huggingface-cli login)") from None
    return str(getattr(info, "commit_url", info))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routertrain push", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="run folder (checkpoints/<run>) or router folder")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing); default main")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    args = parser.parse_args(argv)
    try:
        url = push(args.path, args.repo_id, args.revision, args.private)
    except PushError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"pushed {router_folder(args.path)} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
