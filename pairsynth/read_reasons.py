"""Why a dataset item cannot be read, in words for the person reading the report or the terminal.

``FileNotFoundError: 2`` says nothing; ``file not found: gone.png`` does. The exception's class is
kept apart, in :attr:`pairsynth.readers.ReadError.error`, for programs.
"""

from __future__ import annotations

from PIL import Image

IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*", b"MM\x00*")
"""How image files begin: bytes that start so but do not decode are a damaged image, not some other file."""


def read_failure(error: OSError, name: str) -> str:
    """Why a file could not be read: ``file not found: gone.png``."""
    if isinstance(error, FileNotFoundError):
        return f"file not found: {name}"
    if isinstance(error, IsADirectoryError):
        return f"a folder, not a file: {name}"
    if isinstance(error, PermissionError):
        return f"permission denied: {name}"
    return f"cannot read {name}: {error.strerror or error_message(error)}"


def decode_failure(error: BaseException, is_image: bool, name: str, size: int, head: bytes = b"") -> str:
    """Why a media file's bytes did not decode: ``empty or not an audio file: x.flac (0 bytes)``.

    Args:
        error: what the decoder (Pillow, libsndfile) raised.
        is_image: the file is named as an image (else as audio).
        name: the file as the dataset names it.
        size: its length in bytes.
        head: its first bytes, to tell a damaged image from something else named like one.
    """
    kind = "an image" if is_image else "an audio file"
    if size == 0:
        return f"empty or not {kind}: {name} (0 bytes)"
    if isinstance(error, Image.DecompressionBombError):
        return f"image too large to decode safely: {name} ({error_message(error)})"
    if isinstance(error, Image.UnidentifiedImageError) and not head.startswith(IMAGE_SIGNATURES):
        return f"not an image file (or a format Pillow cannot read): {name} ({size} bytes)"
    if is_image:
        return f"damaged or truncated image: {name} ({size} bytes): {error_message(error)}"
    detail = getattr(error, "error_string", None) or error_message(error)  # libsndfile's own words
    return f"not a readable audio file: {name} ({size} bytes): {detail}"


def error_message(error: BaseException) -> str:
    """An exception's own words on one line, without the object reprs some libraries append (``@ <…>``)."""
    text = str(error.args[0]) if error.args else str(error)
    return " ".join(text.split(" @ <")[0].split())[:300]
