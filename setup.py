from setuptools import setup

setup(cffi_modules=["csrc/build_cparser.py:ffibuilder"])
