"""The embedded synthetic two-domain re-ID benchmark.

Person-like figures are drawn with vectorised numpy at the target size (no assets).
Identity is carried by global traits and part-local ones (garments, shoes, bag); half the
identities come in *twins* that differ in one garment only, so part features matter.
A *domain* is a rendering style (background, lighting, colour, haze, noise, blur,
cameras): domain "a" is a bright warm indoor scene with 6 cameras, domain "b" a darker,
bluish, hazy, noisy and blurred outdoor scene with 8 cameras and smaller figures.

Every random draw comes from ``numpy.random.default_rng`` seeded by a tuple of
(seed, domain, purpose, identity, image), so the same options give byte-identical files.
The tree is written in the Market-1501 layout and naming.

Modules, one job each:

- ``style``: domain styles and per-camera viewpoint and lighting (``DOMAINS``, ``make_camera``)
- ``people``: palettes, random persons, twins and the person behind an identity
- ``plan``: ``SyntheticConfig``, ``ImageSpec`` and ``plan_dataset`` (which images exist)
- ``draw``: the anti-aliased canvas and ``draw_person``
- ``render``: ``Renderer``, one image of a spec in its camera's style
- ``write``: ``encode_jpeg``, ``render_dataset`` (the image tree) and ``contact_sheet``
"""

from lf2.data.synthetic.draw import draw_person
from lf2.data.synthetic.people import (
    BAGS,
    HAIR,
    LOWER,
    LOWER_CUTS,
    LOWER_PATTERNS,
    SHOES,
    SKIN,
    UPPER_PATTERNS,
    Person,
    identity,
    make_twin,
    random_person,
)
from lf2.data.synthetic.plan import SPLIT_DIRS, ImageSpec, SyntheticConfig, plan_dataset
from lf2.data.synthetic.render import Renderer
from lf2.data.synthetic.style import DOMAINS, Camera, DomainStyle, domain_style, make_camera
from lf2.data.synthetic.write import JPEG_QUALITY, contact_sheet, encode_jpeg, render_dataset

__all__ = [
    "BAGS",
    "DOMAINS",
    "HAIR",
    "JPEG_QUALITY",
    "LOWER",
    "LOWER_CUTS",
    "LOWER_PATTERNS",
    "SHOES",
    "SKIN",
    "SPLIT_DIRS",
    "UPPER_PATTERNS",
    "Camera",
    "DomainStyle",
    "ImageSpec",
    "Person",
    "Renderer",
    "SyntheticConfig",
    "contact_sheet",
    "domain_style",
    "draw_person",
    "encode_jpeg",
    "identity",
    "make_camera",
    "make_twin",
    "plan_dataset",
    "random_person",
    "render_dataset",
]
