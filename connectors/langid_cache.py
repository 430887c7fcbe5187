"""py3langid's language model, kept decompressed in the user's cache directory.

py3langid ships its model as an LZMA-compressed npz (4.5 MB, 68 MB unpacked): loading it costs
0.7 s of CPU on these machines, 0.45 s of it in LZMA alone, in every process that starts the
extraction pool, before the first page can be extracted. Unpacked once into plain ``.npy`` files, the
same arrays load in 0.05 s. The cache is derived only from the model file installed with py3langid
(keyed by that file's SHA-256, so an upgrade of py3langid gets its own entry); nothing is fetched.

Whatever goes wrong (no writable cache directory, a damaged entry, a py3langid whose internals
changed) costs only the speed: :func:`load_language_model` then lets py3langid load its model itself.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["cache_root", "load_language_model"]

log = logging.getLogger(__name__)

_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")
_COMPLETE = "complete"  # written last: an entry without it is a build that did not finish


def cache_root() -> Path:
    """``$NEWSWIRE_CACHE_DIR``, else ``$XDG_CACHE_HOME/newswire``, else ``~/.cache/newswire``."""
    explicit = os.environ.get("NEWSWIRE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "newswire"


def _model_file() -> Path:
    from py3langid import langid

    return Path(str(langid.MODEL_DIR)) / str(langid.MODEL_FILE)


def _entry_for(model: Path, root: Path) -> Path:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    return root / f"py3langid-{digest}"


def _build(model: Path, entry: Path) -> None:
    """Unpack the model's arrays into ``entry`` (built beside it, then renamed into place, so a
    concurrent or interrupted build never leaves a half-written entry under the final name)."""
    import numpy as np

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        with tempfile.TemporaryFile(dir=staging) as unpacked:
            with lzma.open(model) as source:
                shutil.copyfileobj(source, unpacked, length=1 << 20)
            unpacked.seek(0)
            with np.load(unpacked, allow_pickle=False) as data:
                for name in _ARRAYS:
                    np.save(staging / f"{name}.npy", data[name], allow_pickle=False)
        (staging / _COMPLETE).write_text(model.name, "utf-8")
        try:
            staging.rename(entry)
        except OSError:  # another process finished first: its entry is as good as ours
            if not (entry / _COMPLETE).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _install_from(entry: Path) -> None:
    import numpy as np
    from py3langid import langid, modelio

    def array(name: str) -> np.ndarray:
        loaded: np.ndarray = np.load(entry / f"{name}.npy", allow_pickle=False)
        return loaded

    # what py3langid's LanguageIdentifier.from_model_file builds from the same arrays
    identifier = langid.LanguageIdentifier(
        array("ptc"),
        array("pc"),
        array("classes").tolist(),
        modelio._to_array(array("nextmove")),
        array("out_feat").tolist(),
        norm_probs=False,
        tk_row=modelio._to_array(array("nextmove_row")),
    )
    langid.IDENTIFIER = identifier


def load_language_model(root: Path | None = None) -> bool:
    """Make py3langid's default identifier ready now. True when it came from the cache (built there
    first if needed); False when py3langid loaded its packaged model itself."""
    import py3langid
    from py3langid import langid

    if langid.IDENTIFIER is not None:
        return False
    try:
        model = _model_file()
        entry = _entry_for(model, root or cache_root())
        if not (entry / _COMPLETE).exists():
            _build(model, entry)
        _install_from(entry)
        return True
    except Exception as exc:  # noqa: BLE001 -- the cache is only an acceleration
        log.debug("language model cache unusable (%s: %s); loading py3langid's own", type(exc).__name__, exc)
        langid.IDENTIFIER = None
        py3langid.classify("")
        return False
