"""Build the Cython extensions (every ``*.pyx`` under ``fastfix/`` and ``server/``)."""

import importlib.util
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent
# Directories of .pyx files that another .pyx includes (``include "codec_parts/..."``):
# parts of that module, not modules of their own.
_INCLUDED_DIRS = {"codec_parts"}


def _write_tags_pxd() -> None:
    """Regenerate fastfix/_tags.pxd from fastfix/tags.py (loaded by path: the package's
    compiled modules do not exist yet); the file is rewritten only when it changes."""
    spec = importlib.util.spec_from_file_location("_fastfix_tags", ROOT / "fastfix" / "tags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pxd = ROOT / "fastfix" / "_tags.pxd"
    text = mod._pxd_source()
    if not pxd.exists() or pxd.read_text() != text:
        pxd.write_text(text)


def _extensions() -> list[Extension]:
    exts = []
    for pyx in sorted([*ROOT.glob("fastfix/**/*.pyx"), *ROOT.glob("server/**/*.pyx")]):
        rel = pyx.relative_to(ROOT)
        if rel.parent.name in _INCLUDED_DIRS:
            continue
        name = ".".join(rel.with_suffix("").parts)
        exts.append(
            Extension(name, [str(rel)], extra_compile_args=["-O3"], define_macros=[("CYTHON_TRACE", "0")])
        )
    return exts


_write_tags_pxd()

setup(
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
)
