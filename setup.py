"""The optional compiled decoding step (lakhnes.models._txl_kernel); everything else is in pyproject.toml.

Where no C compiler is found the build goes on without it (``optional=True``), and generation uses the
numpy step. Instruction sets (AVX2 + F16C, AVX-512) are picked when the module loads, not at build time.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("lakhnes.models._txl_kernel", sources=["src/lakhnes/models/_txl_kernel.c"],
                             depends=["src/lakhnes/models/_txl_kernel_simd.h"], extra_compile_args=["-O3"],
                             optional=True)])
