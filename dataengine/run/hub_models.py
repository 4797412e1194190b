"""Before any work: a learned depth source named by a Hub id that cannot be loaded here is one error.

`model:<hub id>` loads through transformers, which, offline and without the model in the local
cache, retries for about a minute and then fails inside every worker with a long message. This
check answers within seconds, in the client, before a folder is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from dataengine.depth.sources import parse_spec

OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def check_hub_model(source: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError (one line: what, why, how to fix) when `source` is `model:<hub id>`, the
    model is not in the local Hugging Face cache and the Hub cannot be asked for it."""
    kind, argument = parse_spec(source)
    if kind != "model" or Path(argument).expanduser().exists():
        return
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(try_to_load_from_cache(argument, "config.json"), str):
            return  # cached: transformers loads it without the network
    except HFValidationError:
        raise ValueError(f"model:{argument}: neither a local folder nor a Hugging Face hub id (<org>/<name>)") from None
    fix = f"download it where there is network (huggingface-cli download {argument}), or give a local model folder"
    if any(os.environ.get(flag, "").lower() in ("1", "true", "yes", "on") for flag in OFFLINE_FLAGS):
        raise ConnectionError(f"model:{argument} is not in the local Hugging Face cache and offline mode is on; {fix}")
    try:
        HfApi().model_info(argument, timeout=timeout)
    except GatedRepoError:
        raise ConnectionError(f"model:{argument} is gated on the Hub: accept its terms there and log in (HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise ValueError(f"model:{argument}: no such model on the Hugging Face Hub (or it is private: log in with HF_TOKEN)") from None
    except Exception as exc:  # noqa: BLE001 - any transport failure (DNS, refused, timeout, proxy) means the same here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(
            f"model:{argument} is not in the local Hugging Face cache and the Hub cannot be reached ({reason}); {fix}"
        ) from None
