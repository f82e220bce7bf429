"""A region's length range and a length-prior file, as text (torch-free)."""

from __future__ import annotations


def parse_lengths(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"11-15"`` -> ``(11, 15)``: the range of a region's lengths, ``1 <= MIN < MAX``.

    >>> parse_lengths("11-15")
    (11, 15)
    """
    if isinstance(text, (tuple, list)):
        if len(text) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in text):
            raise TypeError(
                f"lengths takes (MIN, MAX), two integers, or the text 'MIN-MAX'; got {text!r}"
            )
        lo, hi = text
    elif not isinstance(text, str):
        raise TypeError(f"lengths takes (MIN, MAX) or 'MIN-MAX', got {type(text).__name__}")
    else:
        low, dash, high = str(text).partition("-")
        if not dash or not low.strip().isdecimal() or not high.strip().isdecimal():
            raise ValueError(f"--lengths takes MIN-MAX, e.g. 11-15; got {text!r}")
        lo, hi = int(low), int(high)
    if not 1 <= lo < hi:
        raise ValueError(
            f"--lengths needs 1 <= MIN < MAX, got {lo}-{hi}"
            + ("; for one length leave --lengths out" if lo == hi else "")
        )
    return lo, hi


def read_weights(path: str) -> dict[int, float]:
    """The ``LENGTH WEIGHT`` lines of a length-prior file; ``ValueError`` naming the file and
    line of anything else (a length listed twice names both lines)."""
    weights: dict[int, float] = {}
    seen: dict[int, int] = {}  # length -> the line that gave it
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise ValueError(
            f"--length-prior {path} is not a text file (not UTF-8): give a file of "
            "'LENGTH WEIGHT' lines"
        ) from None
    for number, line in enumerate(lines, 1):
        text = line.split("#")[0].replace(",", " ").split()
        if not text:
            continue
        try:
            n, w = int(text[0]), float(text[1])
        except (ValueError, IndexError):
            raise ValueError(
                f"--length-prior {path}, line {number}: expected 'LENGTH WEIGHT', got "
                f"{line.strip()[:40]!r}"
            ) from None
        if not 0 < w < float("inf"):
            raise ValueError(
                f"--length-prior {path}, line {number}: weight {w} must be > 0 and finite"
            )
        if n in seen:
            raise ValueError(
                f"--length-prior {path}, lines {seen[n]} and {number} both give length {n} a "
                "weight; "
                "list each length once"
            )
        seen[n] = number
        weights[n] = w
    return weights


def check_covered(path: str, weights: dict[int, float], lengths: tuple[int, int]) -> None:
    """Every length of the range has a weight (checked without walking a huge range)."""
    lo, hi = lengths
    if sum(lo <= n <= hi for n in weights) == hi - lo + 1:
        return
    missing = [n for n in range(lo, min(hi, lo + len(weights) + 10) + 1) if n not in weights]
    shown = str(missing[:10])[:-1] + (", ...]" if len(missing) > 10 or hi > lo + 10 else "]")
    raise ValueError(
        f"--length-prior {path} gives no weight for lengths {shown} of --lengths {lo}-{hi}; "
        "list every length of the range"
    )
