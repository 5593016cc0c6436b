"""Build the compiled hot paths in ext/ into slicebox._speedups.

Metadata lives in pyproject.toml; this file only declares extension modules.
A failed compile is not fatal (markupsafe style): the package then runs on its
pure-Python twins, and tests/test_speedups.py reports the missing module.
"""
import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class optional_build_ext(build_ext):
    """build_ext that warns instead of failing when a compiler is missing."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure falls back
            self._warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    @staticmethod
    def _warn(exc):
        sys.stderr.write(
            "WARNING: building the slicebox speedups failed (%s); "
            "the pure-Python implementations will be used.\n" % exc
        )


def extensions():
    if os.environ.get("SLICEBOX_NO_EXTENSIONS") == "1":
        return []
    sources = sorted(glob.glob(os.path.join("ext", "*.pyx")))
    if not sources:
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    mods = [
        Extension(
            "slicebox._speedups." + os.path.splitext(os.path.basename(src))[0],
            [src],
            extra_compile_args=["-O3"],
        )
        for src in sources
    ]
    return cythonize(
        mods,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": optional_build_ext})
