"""Build the Cython extensions (every ``*.pyx`` under ``fastfix/`` and ``server/``)."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent


def _extensions() -> list[Extension]:
    exts = []
    for pyx in sorted([*ROOT.glob("fastfix/**/*.pyx"), *ROOT.glob("server/**/*.pyx")]):
        rel = pyx.relative_to(ROOT)
        name = ".".join(rel.with_suffix("").parts)
        exts.append(
            Extension(name, [str(rel)], extra_compile_args=["-O3"], define_macros=[("CYTHON_TRACE", "0")])
        )
    return exts


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
