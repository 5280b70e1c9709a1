"""Catalog rows made up for the catalog, migration and sweeper tests (no image behind them)."""

from imagehost.catalog import ImageRow


def image_row(n: int, prefix: str = "image", **changes) -> ImageRow:
    """Row number `n`: id `{prefix}{n:011d}`, a PNG of 64x48, a delete token on odd rows;
    `changes` replace any field."""
    image_id = f"{prefix}{n:011d}"
    values = dict(
        seq=0,
        id=image_id,
        filename=f"{image_id}.png",
        original_name=f"photo {n}.png",
        content_type="image/png",
        size=1000 + n,
        width=64,
        height=48,
        created_at="2026-12-02T06:00:00.000000Z",
        delete_token_hash=f"hash{n}" if n % 2 else None,
    )
    return ImageRow(**{**values, **changes})
