"""lungseg: lung segmentation in chest X-rays.

from lungseg import Segmenter
result = Segmenter.default()("film.png")   # result.mask, result.labels, result.stats
"""

__version__ = "0.1.0"
__all__ = ["Segmenter", "Result"]


def __getattr__(name: str):
    # Imported lazily so that `import lungseg` stays light (no torch until it is used).
    if name in __all__:
        from . import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module 'lungseg' has no attribute {name!r}")
