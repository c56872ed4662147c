"""How mixbake spells numbers in its messages (one spelling for every command)."""


def count(n: int, one: str, many: str = "") -> str:
    """'1 shard', '2 shards', '3 classes' (``many`` when the plural is not ``one + 's'``)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def human_bytes(n: float) -> str:
    """Decimal units: '950 B', '1.6 MB'."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return str(n)
