from setuptools import setup

setup(cffi_modules=["csrc/build_native.py:ffibuilder", "csrc/build_nghttp2.py:ffibuilder"])
